import type { Command } from '../command.js';

// Placeholder until the command lands.
export const narCommand: Command = {
  name: 'nar',
  summary: 'not implemented yet',
  usage: 'Usage: nixyard nar (not implemented yet)',
  run: () => Promise.resolve(1),
};
