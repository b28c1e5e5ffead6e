/** The pure parts of the Kubernetes scheduler: the pod log's builder lines, and Nix's status of a failure. */
import { PodLogFilter, statusOfReason } from '../../gateway/builds/kubernetes-scheduler.js';
import { BuildStatus } from '../../nix/protocol/worker.js';

const DRV = '/nix/store/0123456789abcdfghijklmnpqrsvwxyz-hello.drv';
const OUT = '/nix/store/0123456789abcdfghijklmnpqrsvwxyz-hello';

function filtered(lines: string[]): string[] {
  const got: string[] = [];
  const f = new PodLogFilter(DRV, (l) => got.push(l));
  for (const l of lines) f.push(l);
  f.end();
  return got;
}

test('build-drv header, error block and output paths are not the builder’s log', () => {
  expect(filtered([`building '${DRV}'...`, 'compiling', 'done', OUT, `${OUT}-man`])).toEqual([
    'compiling',
    'done',
  ]);
  expect(
    filtered([
      `building '${DRV}'...`,
      'oops',
      `error: builder for '${DRV}' failed with exit code 2;`,
      '       last 1 log lines:',
      '       > oops',
    ]),
  ).toEqual(['oops']);
});

test('what looks like a trailer but is followed by builder lines is the builder’s', () => {
  expect(filtered(['error: not fatal', '       detail', OUT, 'more'])).toEqual([
    'error: not fatal',
    '       detail',
    OUT,
    'more',
  ]);
  expect(filtered(['   indented', 'x'])).toEqual(['   indented', 'x']);
});

test('a failed NixBuild’s reason → BuildResult status', () => {
  expect(statusOfReason('BuildFailed')).toBe(BuildStatus.PermanentFailure);
  expect(statusOfReason('TimedOut')).toBe(BuildStatus.TimedOut);
  expect(statusOfReason('HashMismatch')).toBe(BuildStatus.OutputRejected);
  expect(statusOfReason('NotDeterministic')).toBe(BuildStatus.NotDeterministic);
  expect(statusOfReason('RetriesExhausted')).toBe(BuildStatus.MiscFailure);
  expect(statusOfReason(undefined)).toBe(BuildStatus.MiscFailure);
});

test('the runner’s lock wait before the builder starts is a notice, not a builder line', () => {
  const got: string[] = [];
  const f = new PodLogFilter(DRV, (l, notice) => got.push(notice ? `notice: ${l}` : l));
  const wait = `waiting for lock on '${OUT}'`;
  for (const l of [`building '${DRV}'...`, wait, 'compiling', wait]) f.push(l);
  f.end();
  // Once the builder has spoken, the same words are its own.
  expect(got).toEqual([`notice: ${wait}`, 'compiling', wait]);
});
