import type { Command } from '../command.js';

// Placeholder until the command lands.
export const drvCommand: Command = {
  name: 'drv',
  summary: 'not implemented yet',
  usage: 'Usage: nixyard drv (not implemented yet)',
  run: () => Promise.resolve(1),
};
