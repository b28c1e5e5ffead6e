/** Every `nixyard` subcommand, in the order `nixyard --help` lists them. */
import type { Command } from './command.js';
import { gatewayCommand } from './commands/gateway.js';
import { operatorCommand } from './commands/operator.js';
import { storeCommand } from './commands/store.js';
import { buildDrvCommand } from './commands/build-drv.js';
import { logCommand } from './commands/log.js';
import { narCommand } from './commands/nar.js';
import { hashCommand } from './commands/hash.js';
import { storePathCommand } from './commands/store-path.js';
import { drvCommand } from './commands/drv.js';

export const commands: readonly Command[] = [
  gatewayCommand,
  operatorCommand,
  storeCommand,
  buildDrvCommand,
  logCommand,
  narCommand,
  hashCommand,
  storePathCommand,
  drvCommand,
];
