/**
 * `nixyard build-drv --redis-url` (a build pod): its inputs are looked up in the shared
 * index, and its outputs land in both the records and Redis, so a gateway replica's
 * store sees them without a refresh or reindex. Real bwrap, nix-instantiate, redis.
 */
import { afterAll, beforeAll, expect, jest, test } from '@jest/globals';
import { PassThrough } from 'node:stream';
import { buildDrvCommand } from '../../cli/commands/build-drv.js';
import { LocalStore } from '../../store/local-store.js';
import { RecordPathIndex } from '../../store/record-index.js';
import { RedisPathIndex } from '../../store/redis-index.js';
import { corpusCopy, drvOutputs, importClosure, instantiate } from '../builder/harness.js';
import { startRedis, type RedisServer } from './redis-support.js';
import { removeAll, tempDir } from './support.js';

jest.setTimeout(60_000);

let server: RedisServer;
let corpus: string;
let dataDir: string;
let gatewayIndex: RedisPathIndex;

beforeAll(async () => {
  server = await startRedis();
  corpus = await corpusCopy();
  dataDir = await tempDir('nixyard-redis-build-');
  gatewayIndex = await RedisPathIndex.connect(server.url);
});

afterAll(async () => {
  await gatewayIndex.close();
  await server.stop();
  await removeAll(dataDir);
  await removeAll(corpus);
});

test('outputs registered by build-drv --redis-url are valid for a gateway on the same Redis at once', async () => {
  const gateway = await LocalStore.open({ dataDir, index: gatewayIndex });
  const drvPath = (await instantiate(corpus, 'checks.nix')).get('requisites-self-ok')!;
  await importClosure(gateway, [drvPath]);
  const out = (await drvOutputs(drvPath)).get('out')!;
  expect(await gateway.isValid(out)).toBe(false);

  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let printed = '';
  let log = '';
  stdout.on('data', (c: Buffer) => (printed += c.toString()));
  stderr.on('data', (c: Buffer) => (log += c.toString()));
  const code = await buildDrvCommand.run([drvPath, '--data-dir', dataDir, '--redis-url', server.url], {
    stdin: new PassThrough(),
    stdout,
    stderr,
  });
  expect({ code, log }).toMatchObject({ code: 0 });
  expect(printed).toBe(`${out}\n`);

  // No refresh(): the gateway's index is the one build-drv wrote to.
  expect(await gateway.isValid(out)).toBe(true);
  expect((await gateway.queryPathInfo(out))?.references).toEqual([out]);
  expect(await new RecordPathIndex(gateway.layout).get(out)).toBeDefined();
  expect((await gateway.verify()).problems).toEqual([]);
});
