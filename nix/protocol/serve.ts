/** Serve protocol constants (`serve-protocol.hh`), `nix-store --serve`, `ssh://`. */

export const SERVE_MAGIC_1 = 0x390c9deb; // client → server
export const SERVE_MAGIC_2 = 0x5452eecb; // server → client

export const ServeCommand = {
  QueryValidPaths: 1, // cmdQueryValidPaths
  QueryPathInfos: 2, // cmdQueryPathInfos
  DumpStorePath: 3, // cmdDumpStorePath
  ImportPaths: 4, // cmdImportPaths
  ExportPaths: 5, // cmdExportPaths
  BuildPaths: 6, // cmdBuildPaths
  QueryClosure: 7, // cmdQueryClosure
  BuildDerivation: 8, // cmdBuildDerivation
  AddToStoreNar: 9, // cmdAddToStoreNar
} as const;

export type ServeCommandName = keyof typeof ServeCommand;

const names = new Map<number, ServeCommandName>(
  Object.entries(ServeCommand).map(([k, v]) => [v, k as ServeCommandName]),
);

export function serveCommandName(code: number): ServeCommandName | undefined {
  return names.get(code);
}
