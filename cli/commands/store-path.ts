import type { Command } from '../command.js';

// Placeholder until the command lands.
export const storePathCommand: Command = {
  name: 'store-path',
  summary: 'not implemented yet',
  usage: 'Usage: nixyard store-path (not implemented yet)',
  run: () => Promise.resolve(1),
};
