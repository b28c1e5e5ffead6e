import type { Command } from '../command.js';

// Placeholder until the command lands.
export const hashCommand: Command = {
  name: 'hash',
  summary: 'not implemented yet',
  usage: 'Usage: nixyard hash (not implemented yet)',
  run: () => Promise.resolve(1),
};
