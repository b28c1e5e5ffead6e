/** Every `nixyard` subcommand, in the order `nixyard --help` lists them. */
import type { Command } from './command.js';
import { narCommand } from './commands/nar.js';
import { hashCommand } from './commands/hash.js';
import { storePathCommand } from './commands/store-path.js';
import { drvCommand } from './commands/drv.js';

export const commands: readonly Command[] = [narCommand, hashCommand, storePathCommand, drvCommand];
