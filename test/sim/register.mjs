// `node --import ./test/sim/register.mjs test/sim/run.ts`: TypeScript sources on Node 20.
import { register } from 'node:module';

register('./ts-hooks.mjs', import.meta.url);
