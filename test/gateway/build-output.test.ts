/** A build's shared output: builder lines and runner notices apart, replayed to late followers. */
import { expect, test } from '@jest/globals';
import { BuildOutput, NoticeDetector } from '../../gateway/builds/build-output.js';

const WAIT = "waiting for lock on '/nix/store/0123456789abcdfghijklmnpqrsvwxyz-hello'";

test('notices are what the runner says before the builder speaks, and only lock waits', () => {
  const d = new NoticeDetector();
  expect(d.isNotice(WAIT)).toBe(true);
  expect(d.isNotice(WAIT)).toBe(true);
  expect(d.isNotice('waiting for lock on something else')).toBe(false);
  expect(d.isNotice(WAIT)).toBe(false);
});

test('followers get lines and notices apart, the recent past first, nothing after close', () => {
  const out = new BuildOutput();
  out.push(WAIT, true);
  out.push('one');
  const early: string[] = [];
  const stop = out.follow(
    (l) => early.push(`log ${l}`),
    (n) => early.push(`notice ${n}`),
  );
  out.push('two');
  const late: string[] = [];
  out.follow((l) => late.push(l)); // no notice listener: notices are not log lines
  stop();
  out.push('three');
  out.close();
  out.push('four');
  expect(early).toEqual([`notice ${WAIT}`, 'log one', 'log two']);
  expect(late).toEqual(['one', 'two', 'three']);
});
