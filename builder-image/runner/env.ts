/**
 * The builder's environment and the files Nix puts in its build directory, exactly as
 * Nix 2.8 makes them (`LocalDerivationGoal::initEnv`, `initTmpDir`,
 * `writeStructuredAttrs`, and the `exportReferencesGraph` part of `startBuilder`;
 * protocol/README.md §13). A function of the derivation, the settings and a read-only
 * view of the input closure's path infos: no I/O of its own.
 */
import { hashOf } from '../../nix/hash.js';
import { derivationType, type Derivation } from '../../nix/derivation/index.js';
import { BuildError, BuildErrorCode, hintfmt, plainMessage } from './errors.js';
import { BuildStatus } from './result.js';
import {
  attrsJsonText,
  attrsShText,
  finalStructuredAttrs,
  parseStructuredAttrs,
  structuredGraphRequests,
  structuredStrings,
  type GraphEntry,
} from './structured-attrs.js';
import type { JsonValue } from './json.js';

export interface EnvSettings {
  /** `cores` (NIX_BUILD_CORES), printed as is (Nix prints 0 too). */
  readonly cores: number;
  /** `sandbox-build-dir`: the build directory inside the sandbox. */
  readonly buildDirInSandbox: string;
  /**
   * Where Nix would have made the build directory on the host
   * (`$TMPDIR/nix-build-<name>.drv-0`). Nix 2.8 puts this host path, not the sandbox
   * one, into NIX_ATTRS_JSON_FILE / NIX_ATTRS_SH_FILE (observed); we copy that.
   */
  readonly hostBuildDir: string;
  readonly storeDir: string;
  /** The daemon's environment, for `impureEnvVars` of fixed-output derivations. */
  readonly hostEnv: Readonly<Record<string, string | undefined>>;
}

export const DEFAULT_BUILD_DIR = '/build';
export const HOMELESS = '/homeless-shelter';

/** What the env needs to know about store paths (input closure and graph exports). */
export interface PathInfoView {
  readonly path: string;
  readonly deriver: string | undefined;
  /** `sha256:<nix32>` */
  readonly narHash: string;
  readonly narSize: number;
  readonly references: readonly string[];
  readonly ca: string | undefined;
}

export interface StoreView {
  /** Info of a valid path; throws if not valid. */
  info(path: string): PathInfoView;
  /** Output paths of a derivation (for exportReferencesGraph of a .drv). */
  drvOutputs(drvPath: string): readonly string[];
}

export interface BuildDirFile {
  /** Name inside the build directory. */
  readonly name: string;
  readonly content: string;
  /** Nix writes graph files as root (not chowned to the build user). */
  readonly ownedByBuilder: boolean;
}

export interface BuildEnvironment {
  /** In Nix's insertion order is irrelevant: the builder sees a set. */
  readonly env: Map<string, string>;
  readonly files: BuildDirFile[];
  /** Parsed `__json`, if structured. */
  readonly structured: Map<string, JsonValue> | undefined;
}

/** `tokenizeString` with Nix's default separators. */
export function tokenize(s: string): string[] {
  return s.split(/[ \t\n\r]+/).filter((t) => t !== '');
}

/** `.attr-<nix32(sha256(name))>` */
export function passAsFileName(attr: string): string {
  return `.attr-${hashOf('sha256', attr).toBase32()}`;
}

/** `Store::exportReferences`: closure of `paths`, plus closures of outputs of .drvs in it. */
export function exportReferences(
  paths: readonly string[],
  inputPaths: ReadonlySet<string>,
  store: StoreView,
): string[] {
  const out = new Set<string>();
  const close = (p: string): void => {
    const stack = [p];
    while (stack.length > 0) {
      const q = stack.pop()!;
      if (out.has(q)) continue;
      out.add(q);
      for (const r of store.info(q).references) if (!out.has(r)) stack.push(r);
    }
  };
  for (const p of paths) {
    if (!inputPaths.has(p)) {
      throw new BuildError(
        BuildErrorCode.INPUT_MISSING,
        BuildStatus.MiscFailure,
        hintfmt(
          "cannot export references of path '%s' because it is not in the input closure of the derivation",
          p,
        ),
        { path: p },
      );
    }
    close(p);
  }
  for (const p of [...out]) if (p.endsWith('.drv')) for (const o of store.drvOutputs(p)) close(o);
  return [...out].sort();
}

/** `makeValidityRegistration(paths, false, false)` */
export function validityRegistration(paths: readonly string[], store: StoreView): string {
  let s = '';
  for (const p of paths) {
    const info = store.info(p);
    s += `${p}\n\n${info.references.length}\n`;
    for (const r of [...info.references].sort()) s += `${r}\n`;
  }
  return s;
}

function graphEntries(paths: readonly string[], store: StoreView): GraphEntry[] {
  return paths.map((p) => {
    const info = store.info(p);
    const closure = exportReferences([p], new Set([p]), { info: (q) => store.info(q), drvOutputs: () => [] });
    return {
      path: p,
      narHash: info.narHash,
      narSize: info.narSize,
      closureSize: closure.reduce((n, q) => n + store.info(q).narSize, 0),
      references: [...info.references].sort(),
      ca: info.ca,
    };
  });
}

function inStore(p: string, storeDir: string): boolean {
  return p.startsWith(storeDir + '/') && p.length > storeDir.length + 1;
}

/** `storePathS` of `exportReferencesGraph` → the store path (`toStorePath`: first component). */
function toStorePath(p: string, storeDir: string): string {
  const rest = p.slice(storeDir.length + 1);
  const slash = rest.indexOf('/');
  return `${storeDir}/${slash < 0 ? rest : rest.slice(0, slash)}`;
}

/** Output name → path, for derivations whose output paths are known (input-addressed, fixed). */
export function outputPaths(drv: Derivation): Map<string, string> {
  const out = new Map<string, string>();
  for (const [name, o] of drv.outputs) {
    if (o.kind === 'inputAddressed' || o.kind === 'fixed') out.set(name, o.path);
  }
  return out;
}

export function buildEnvironment(
  drv: Derivation,
  drvPath: string,
  inputPaths: ReadonlySet<string>,
  settings: EnvSettings,
  store: StoreView,
): BuildEnvironment {
  const env = new Map<string, string>();
  const files: BuildDirFile[] = [];
  const fixed = derivationType(drv).kind === 'fixed';
  const jsonText = drv.env.get('__json');
  const structured = jsonText !== undefined ? parseStructuredAttrs(jsonText, drvPath) : undefined;
  const tmp = settings.buildDirInSandbox;

  env.set('PATH', '/path-not-set');
  env.set('HOME', HOMELESS);
  env.set('NIX_STORE', settings.storeDir);
  env.set('NIX_BUILD_CORES', String(settings.cores));

  // initTmpDir
  if (structured === undefined) {
    const passAsFile = new Set(tokenize(drv.env.get('passAsFile') ?? ''));
    for (const [key, value] of drv.env) {
      if (!passAsFile.has(key)) {
        env.set(key, value);
      } else {
        const fn = passAsFileName(key);
        files.push({ name: fn, content: value, ownedByBuilder: true });
        env.set(`${key}Path`, `${tmp}/${fn}`);
      }
    }
  }
  for (const v of ['NIX_BUILD_TOP', 'TMPDIR', 'TEMPDIR', 'TMP', 'TEMP', 'PWD']) env.set(v, tmp);

  if (fixed) env.set('NIX_OUTPUT_CHECKED', '1');
  if (fixed) {
    const impure = structured
      ? (structuredStrings(structured, 'impureEnvVars', drvPath) ?? [])
      : tokenize(drv.env.get('impureEnvVars') ?? '');
    for (const name of impure) env.set(name, settings.hostEnv[name] ?? '');
  }
  env.set('NIX_LOG_FD', '2');
  env.set('TERM', 'xterm-256color');

  // exportReferencesGraph (startBuilder)
  if (structured === undefined) {
    const s = drv.env.get('exportReferencesGraph') ?? '';
    const ss = tokenize(s);
    if (ss.length % 2 !== 0) {
      throw new BuildError(
        BuildErrorCode.ATTRS_INVALID,
        BuildStatus.MiscFailure,
        hintfmt("odd number of tokens in 'exportReferencesGraph': '%s'", s),
        { drvPath },
      );
    }
    for (let i = 0; i < ss.length; i += 2) {
      const fileName = ss[i]!;
      const pathS = ss[i + 1]!;
      if (!/^[A-Za-z_][A-Za-z0-9_.-]*$/.test(fileName)) {
        throw new BuildError(
          BuildErrorCode.ATTRS_INVALID,
          BuildStatus.MiscFailure,
          hintfmt("invalid file name '%s' in 'exportReferencesGraph'", fileName),
          { drvPath, fileName },
        );
      }
      if (!inStore(pathS, settings.storeDir)) {
        throw new BuildError(
          BuildErrorCode.ATTRS_INVALID,
          BuildStatus.MiscFailure,
          hintfmt("'exportReferencesGraph' contains a non-store path '%s'", pathS),
          { drvPath, path: pathS },
        );
      }
      const paths = exportReferences([toStorePath(pathS, settings.storeDir)], inputPaths, store);
      files.push({ name: fileName, content: validityRegistration(paths, store), ownedByBuilder: false });
    }
  } else {
    const graphs = new Map<string, GraphEntry[]>();
    for (const [key, paths] of structuredGraphRequests(structured)) {
      const storePaths = paths.map((p) => {
        if (!inStore(p, settings.storeDir)) {
          throw new BuildError(
            BuildErrorCode.ATTRS_INVALID,
            BuildStatus.MiscFailure,
            plainMessage(`path '${p}' is not in the Nix store`),
            { drvPath, path: p },
          );
        }
        return toStorePath(p, settings.storeDir);
      });
      graphs.set(key, graphEntries(exportReferences(storePaths, inputPaths, store), store));
    }
    const json = finalStructuredAttrs(structured, outputPaths(drv), graphs);
    files.push({ name: '.attrs.sh', content: attrsShText(json), ownedByBuilder: true });
    env.set('NIX_ATTRS_SH_FILE', `${settings.hostBuildDir}/.attrs.sh`);
    files.push({ name: '.attrs.json', content: attrsJsonText(json), ownedByBuilder: true });
    env.set('NIX_ATTRS_JSON_FILE', `${settings.hostBuildDir}/.attrs.json`);
  }
  return { env, files, structured };
}

/** `ParsedDerivation::getStringsAttr` */
export function stringsAttr(
  drv: Derivation,
  structured: ReadonlyMap<string, JsonValue> | undefined,
  name: string,
  drvPath: string,
): string[] | undefined {
  if (structured) return structuredStrings(structured, name, drvPath);
  const v = drv.env.get(name);
  return v === undefined ? undefined : tokenize(v);
}
