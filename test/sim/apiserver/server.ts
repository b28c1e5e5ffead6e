/**
 * The HTTP face of the simulated API server, on loopback: discovery, the REST paths
 * of every served resource, watch streams, Table responses, protobuf request bodies,
 * pods/log, pods/eviction, pods/binding, an OpenAPI v3 index (for kubectl's and helm's
 * field-validation probe), fault injection and a request log.
 * https://kubernetes.io/docs/reference/using-api/api-concepts/
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { Api, type ApiOptions, type DeleteOptions, type FieldValidation, type WatchOptions } from './api.js';
import { ControlPlane } from './controllers.js';
import { ApiError, Errors, successStatus } from './errors.js';
import { Faults, type FaultAction, type FaultRule } from './faults.js';
import { PATCH_TYPES } from './patch.js';
import { decodeProtobuf, PROTOBUF_TYPE } from './protobuf.js';
import { apiVersionOf, GROUP_ORDER, type ResourceType } from './resources.js';
import { toTable, wantsTable, type IncludeObject } from './table.js';
import { isDict, rfc3339, type Dict, type KObject } from './types.js';

export const SERVER_VERSION = { major: '1', minor: '34', gitVersion: 'v1.34.0' };

export interface RecordedRequest {
  readonly at: number;
  readonly method: string;
  readonly path: string;
  readonly query: string;
  readonly contentType: string;
  readonly accept: string;
  readonly userAgent: string;
  status: number;
  /** The request body as text (JSON/YAML bodies; protobuf shown decoded), first 64 KiB. */
  readonly body: string;
}

export interface LogOptions {
  follow: boolean;
  timestamps: boolean;
  sinceTime?: number;
  sinceSeconds?: number;
  tailLines?: number;
  limitBytes?: number;
  previous: boolean;
}

/** What the kubelet provides for pods/log. */
export interface LogSource {
  /** Throws ApiError (400) when the container has not started. Resolves when the stream ends. */
  stream(
    pod: KObject,
    container: string,
    opts: LogOptions,
    out: ServerResponse,
    signal: AbortSignal,
  ): Promise<void>;
}

export type AdminHandler = (
  req: IncomingMessage,
  res: ServerResponse,
  body: Buffer,
  url: URL,
) => Promise<void> | void;

export interface SimApiServerOptions extends ApiOptions {
  /** Flush watch events in a single write each (default) — set by tests only. */
  readonly host?: string;
}

interface WatchConn {
  type: ResourceType;
  namespace: string | undefined;
  res: ServerResponse;
  stop: () => void;
  silent: boolean;
}

function send(res: ServerResponse, code: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(code, {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

function warningHeaders(res: ServerResponse, warnings: readonly string[]): void {
  if (warnings.length > 0)
    res.setHeader(
      'Warning',
      warnings.map((w) => `299 - "${w.replace(/"/g, '\\"')}"`),
    );
}

function mediaType(header: string | undefined): string {
  return (header ?? '').split(';')[0]!.trim().toLowerCase();
}

export class SimApiServer {
  readonly api: Api;
  readonly controlPlane: ControlPlane;
  readonly faults = new Faults();
  readonly requests: RecordedRequest[] = [];
  private readonly http: Server;
  private readonly sockets = new Set<Socket>();
  private readonly watches = new Set<WatchConn>();
  private readonly admin = new Map<string, AdminHandler>();
  logSource: LogSource | undefined;
  /** Hook for the eviction API (the kubelet module marks the pod and deletes it). */
  evict: ((pod: KObject, deleteOptions: DeleteOptions) => Promise<void>) | undefined;
  private _url = '';

  constructor(options: SimApiServerOptions = {}) {
    this.api = new Api(options);
    this.controlPlane = new ControlPlane(this.api);
    this.http = createServer((req, res) => void this.handle(req, res));
    this.http.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    this.http.keepAliveTimeout = 60_000;
  }

  get url(): string {
    return this._url;
  }

  async listen(port = 0, host = '127.0.0.1'): Promise<string> {
    await new Promise<void>((resolve) => this.http.listen(port, host, resolve));
    const a = this.http.address() as AddressInfo;
    this._url = `http://${host}:${a.port}`;
    return this._url;
  }

  async close(): Promise<void> {
    this.controlPlane.stop();
    for (const w of this.watches) {
      w.stop();
      w.res.destroy();
    }
    this.watches.clear();
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.http.close(() => resolve()));
    this.api.clock.stop();
  }

  /** Registers `/__sim/<name>` (POST) for in-cluster fault hooks. */
  adminRoute(name: string, h: AdminHandler): void {
    this.admin.set(name, h);
  }

  // ------------------------------------------------------------ watch faults
  private selectWatches(filter?: { plural?: string; namespace?: string }): WatchConn[] {
    return [...this.watches].filter(
      (w) =>
        (filter?.plural === undefined || w.type.plural === filter.plural) &&
        (filter?.namespace === undefined || w.namespace === filter.namespace),
    );
  }

  /** Ends matching watch streams cleanly (as the server's watch timeout does). */
  closeWatches(filter?: { plural?: string; namespace?: string }): number {
    const ws = this.selectWatches(filter);
    for (const w of ws) {
      w.stop();
      w.res.end();
      this.watches.delete(w);
    }
    return ws.length;
  }

  /** Kills the TCP connections of matching watches (no chunked terminator). */
  dropWatches(filter?: { plural?: string; namespace?: string }): number {
    const ws = this.selectWatches(filter);
    for (const w of ws) {
      w.stop();
      w.res.socket?.destroy();
      this.watches.delete(w);
    }
    return ws.length;
  }

  /** Matching watches stay open but receive nothing more (a half-open connection). */
  silenceWatches(filter?: { plural?: string; namespace?: string }): number {
    const ws = this.selectWatches(filter);
    for (const w of ws) w.silent = true;
    return ws.length;
  }

  /** Every resourceVersion issued so far becomes too old: watches from them get 410. */
  expireResourceVersions(): void {
    this.api.store.compact();
  }

  get openWatchCount(): number {
    return this.watches.size;
  }

  // ------------------------------------------------------------ HTTP
  private async readBody(req: IncomingMessage): Promise<Buffer> {
    const chunks: Buffer[] = [];
    let n = 0;
    for await (const c of req) {
      n += (c as Buffer).length;
      if (n > 3 * 1024 * 1024)
        throw new ApiError(413, 'RequestEntityTooLarge', 'Request entity too large: limit is 3145728');
      chunks.push(c as Buffer);
    }
    return Buffer.concat(chunks);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://sim');
    const method = req.method ?? 'GET';
    let body: Buffer = Buffer.alloc(0);
    const rec: RecordedRequest = {
      at: this.api.clock.now(),
      method,
      path: url.pathname,
      query: url.search,
      contentType: req.headers['content-type'] ?? '',
      accept: req.headers.accept ?? '',
      userAgent: req.headers['user-agent'] ?? '',
      status: 0,
      body: '',
    };
    res.on('finish', () => (rec.status = res.statusCode));
    try {
      body = await this.readBody(req);
      (rec as { body: string }).body = body
        .subarray(0, 65536)
        .toString(mediaType(rec.contentType) === PROTOBUF_TYPE ? 'base64' : 'utf8');
      if (!url.pathname.startsWith('/__sim/')) this.requests.push(rec);
      if (url.pathname.startsWith('/__sim/')) return await this.handleAdmin(req, res, body, url);
      const watch = url.searchParams.get('watch') === 'true' || url.searchParams.get('watch') === '1';
      const fault = this.faults.match(method, url.pathname, watch);
      if (fault && (await this.applyFault(fault, res))) return;
      await this.route(req, res, url, body, method);
    } catch (e) {
      if (res.headersSent) {
        res.end();
        return;
      }
      const err = e instanceof ApiError ? e : Errors.internal(e instanceof Error ? e.message : String(e));
      send(res, err.code, err.toStatus(), err.headers);
    }
  }

  /** Returns true when the fault answered (the request goes no further). */
  private async applyFault(f: FaultAction, res: ServerResponse): Promise<boolean> {
    switch (f.type) {
      case 'delay':
        await new Promise((r) => setTimeout(r, f.ms));
        return false;
      case 'drop':
        res.socket?.destroy();
        return true;
      case 'hang':
        return true;
      case 'status': {
        const reason =
          f.reason ?? (f.code === 429 ? 'TooManyRequests' : f.code === 410 ? 'Expired' : 'InternalError');
        const err = new ApiError(
          f.code,
          reason,
          f.message ?? (f.code === 429 ? 'Too many requests, please try again later.' : 'injected fault'),
          f.retryAfterSeconds !== undefined ? { retryAfterSeconds: f.retryAfterSeconds } : undefined,
          f.retryAfterSeconds !== undefined ? { 'Retry-After': String(f.retryAfterSeconds) } : {},
        );
        send(res, err.code, err.toStatus(), err.headers);
        return true;
      }
    }
  }

  private async handleAdmin(
    req: IncomingMessage,
    res: ServerResponse,
    body: Buffer,
    url: URL,
  ): Promise<void> {
    const name = url.pathname.slice('/__sim/'.length);
    const json = (): Dict => (body.length ? (JSON.parse(body.toString('utf8')) as Dict) : {});
    const filter = (): { plural?: string; namespace?: string } => {
      const j = json();
      return {
        ...(typeof j.plural === 'string' ? { plural: j.plural } : {}),
        ...(typeof j.namespace === 'string' ? { namespace: j.namespace } : {}),
      };
    };
    switch (name) {
      case 'faults':
        if (req.method === 'DELETE') {
          this.faults.clear();
          return send(res, 200, {});
        }
        return send(res, 201, { id: this.faults.add(json() as unknown as FaultRule) });
      case 'requests':
        return send(res, 200, this.requests);
      case 'watches/close':
        return send(res, 200, { closed: this.closeWatches(filter()) });
      case 'watches/drop':
        return send(res, 200, { dropped: this.dropWatches(filter()) });
      case 'watches/silence':
        return send(res, 200, { silenced: this.silenceWatches(filter()) });
      case 'compact':
        this.expireResourceVersions();
        return send(res, 200, { compactedRv: this.api.store.compactedRv });
      case 'clock/advance':
        this.api.clock.advance(Number(url.searchParams.get('ms') ?? json().ms ?? 0));
        return send(res, 200, { now: rfc3339(this.api.clock.now()) });
    }
    const h = [...this.admin.entries()].find(([k]) => name === k || name.startsWith(`${k}/`));
    if (!h) throw Errors.pathNotFound();
    await h[1](req, res, body, url);
  }

  private async route(
    req: IncomingMessage,
    res: ServerResponse,
    url: URL,
    body: Buffer,
    method: string,
  ): Promise<void> {
    const p = url.pathname.replace(/\/+$/, '') || '/';
    if (p === '/version')
      return send(res, 200, {
        ...SERVER_VERSION,
        platform: 'linux/amd64',
        goVersion: 'go1.24.0',
        compiler: 'gc',
        gitCommit: 'sim',
        gitTreeState: 'clean',
        buildDate: '2026-01-01T00:00:00Z',
      });
    if (p === '/healthz' || p === '/livez' || p === '/readyz') {
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      return void res.end('ok');
    }
    if (p === '/api')
      return send(res, 200, {
        kind: 'APIVersions',
        versions: ['v1'],
        serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: new URL(this._url).host }],
      });
    if (p === '/apis') return send(res, 200, this.groupList());
    if (p === '/openapi/v3') return send(res, 200, this.openApiIndex());
    if (p.startsWith('/openapi/v3/')) return send(res, 200, this.openApiDoc(p.slice('/openapi/v3/'.length)));
    if (p === '/openapi/v2') throw Errors.pathNotFound();
    const segs = p.split('/').slice(1);
    let group: string;
    let version: string;
    let rest: string[];
    if (segs[0] === 'api') {
      if (segs[1] !== 'v1') throw Errors.pathNotFound();
      group = '';
      version = 'v1';
      rest = segs.slice(2);
    } else if (segs[0] === 'apis') {
      group = segs[1] ?? '';
      if (segs.length === 2) {
        const g = this.groupList().groups.find((x) => x.name === group);
        if (!g) throw Errors.pathNotFound();
        return send(res, 200, { kind: 'APIGroup', apiVersion: 'v1', ...g });
      }
      version = segs[2] ?? '';
      rest = segs.slice(3);
    } else throw Errors.pathNotFound();
    const types = this.api.allTypes().filter((t) => t.group === group && t.version === version);
    if (types.length === 0) throw Errors.pathNotFound();
    if (rest.length === 0) return send(res, 200, this.resourceList(group, version, types));

    // /namespaces/{ns}/{plural}[/{name}[/{sub}]]  or  /{plural}[/{name}[/{sub}]]
    let namespace: string | undefined;
    if (
      rest[0] === 'namespaces' &&
      rest.length >= 3 &&
      types.some((t) => t.plural === rest[2] && t.namespaced)
    ) {
      namespace = rest[1];
      rest = rest.slice(2);
    }
    const [plural, name, sub, ...extra] = rest;
    const t = types.find((x) => x.plural === plural);
    if (!t || extra.length > 0) throw Errors.pathNotFound();
    if (t.namespaced && namespace === undefined && name !== undefined) throw Errors.pathNotFound();
    if (sub !== undefined && !t.subresources.includes(sub)) throw Errors.pathNotFound();
    const q = url.searchParams;
    const ns = namespace ?? '';
    if (name === undefined) return this.collection(req, res, t, namespace, q, body, method);
    if (sub === 'log') return this.podLog(req, res, t, ns, name, q);
    if (sub === 'eviction') return this.eviction(res, t, ns, name, body, req);
    if (sub === 'binding') return this.binding(res, t, ns, name, body, req);
    return this.item(req, res, t, ns, name, sub, q, body, method);
  }

  private decodeBody(req: IncomingMessage, body: Buffer): unknown {
    const ct = mediaType(req.headers['content-type']);
    if (body.length === 0) return undefined;
    if (ct === PROTOBUF_TYPE)
      return decodeProtobuf(body, ['application/json', 'application/yaml', PROTOBUF_TYPE]);
    if (ct === '' || ct === 'application/json' || ct === 'application/yaml' || ct === '*/*') {
      try {
        return JSON.parse(body.toString('utf8')) as unknown;
      } catch (e) {
        throw Errors.badRequest(`couldn't get version/kind; json parse error: ${(e as Error).message}`);
      }
    }
    throw Errors.unsupportedMediaType(ct, ['application/json', 'application/yaml', PROTOBUF_TYPE]);
  }

  private writeOptions(q: URLSearchParams, subresource?: string) {
    const fv = q.get('fieldValidation');
    return {
      dryRun: q.getAll('dryRun').includes('All'),
      ...(q.get('fieldManager') ? { fieldManager: q.get('fieldManager')! } : {}),
      ...(fv ? { fieldValidation: fv as FieldValidation } : {}),
      force: q.get('force') === 'true',
      ...(subresource ? { subresource } : {}),
    };
  }

  private deleteOptions(req: IncomingMessage, q: URLSearchParams, body: Buffer): DeleteOptions {
    const b = (this.decodeBody(req, body) as Dict | undefined) ?? {};
    const pp = (q.get('propagationPolicy') ?? b.propagationPolicy) as
      DeleteOptions['propagationPolicy'] | undefined;
    const grace = q.get('gracePeriodSeconds') ?? b.gracePeriodSeconds;
    const orphan = q.get('orphanDependents') ?? b.orphanDependents;
    const dry = [...q.getAll('dryRun'), ...((b.dryRun as string[] | undefined) ?? [])];
    if (pp !== undefined && !['Orphan', 'Background', 'Foreground'].includes(pp))
      throw Errors.invalid('DeleteOptions', 'meta.k8s.io', '', [
        {
          reason: 'FieldValueNotSupported',
          field: 'propagationPolicy',
          message: `Unsupported value: "${pp}": supported values: "Foreground", "Background", "Orphan", "nil"`,
        },
      ]);
    return {
      ...(pp ? { propagationPolicy: pp } : {}),
      ...(grace !== undefined && grace !== null ? { gracePeriodSeconds: Number(grace) } : {}),
      ...(orphan !== undefined && orphan !== null
        ? { orphanDependents: orphan === true || orphan === 'true' }
        : {}),
      ...(isDict(b.preconditions) ? { preconditions: b.preconditions } : {}),
      dryRun: dry.includes('All'),
    };
  }

  private respondObject(
    req: IncomingMessage,
    res: ServerResponse,
    t: ResourceType,
    o: KObject,
    code = 200,
    q?: URLSearchParams,
  ): void {
    if (req.method === 'GET' && wantsTable(req.headers.accept)) {
      return send(
        res,
        code,
        toTable(
          t,
          [o],
          { resourceVersion: o.metadata.resourceVersion },
          this.includeObject(q),
          this.api.clock.now(),
        ),
      );
    }
    send(res, code, o);
  }

  private includeObject(q: URLSearchParams | undefined): IncludeObject {
    const v = q?.get('includeObject');
    return v === 'None' || v === 'Object' ? v : 'PartialObjectMetadata';
  }

  private async collection(
    req: IncomingMessage,
    res: ServerResponse,
    t: ResourceType,
    namespace: string | undefined,
    q: URLSearchParams,
    body: Buffer,
    method: string,
  ): Promise<void> {
    const listOpts = {
      labelSelector: q.get('labelSelector'),
      fieldSelector: q.get('fieldSelector'),
      resourceVersion: q.get('resourceVersion'),
      resourceVersionMatch: q.get('resourceVersionMatch'),
      continue: q.get('continue'),
      ...(q.get('limit') ? { limit: Number(q.get('limit')) } : {}),
    };
    if (method === 'GET') {
      if (q.get('watch') === 'true' || q.get('watch') === '1')
        return this.watch(req, res, t, namespace, q, listOpts);
      const r = this.api.list(t, namespace, listOpts);
      const meta: Dict = { resourceVersion: r.resourceVersion };
      if (r.continue) {
        meta.continue = r.continue;
        meta.remainingItemCount = r.remainingItemCount;
      }
      const accept = req.headers.accept ?? '';
      if (wantsTable(accept))
        return send(res, 200, toTable(t, r.items, meta, this.includeObject(q), this.api.clock.now()));
      if (/as=PartialObjectMetadataList/.test(accept))
        return send(res, 200, {
          kind: 'PartialObjectMetadataList',
          apiVersion: 'meta.k8s.io/v1',
          metadata: meta,
          items: r.items.map((o) => ({
            kind: 'PartialObjectMetadata',
            apiVersion: 'meta.k8s.io/v1',
            metadata: o.metadata,
          })),
        });
      return send(res, 200, {
        kind: t.listKind,
        apiVersion: apiVersionOf(t),
        metadata: meta,
        items: r.items,
      });
    }
    if (method === 'POST') {
      if (t.namespaced && namespace === undefined) throw Errors.methodNotAllowed();
      const r = await this.api.create(t, namespace ?? '', this.decodeBody(req, body), this.writeOptions(q));
      warningHeaders(res, r.warnings);
      return send(res, 201, r.object);
    }
    if (method === 'DELETE') {
      const deleted = await this.api.deleteCollection(
        t,
        namespace,
        listOpts,
        this.deleteOptions(req, q, body),
      );
      return send(res, 200, {
        kind: t.listKind,
        apiVersion: apiVersionOf(t),
        metadata: { resourceVersion: String(this.api.store.currentRv) },
        items: deleted,
      });
    }
    throw Errors.methodNotAllowed();
  }

  private async item(
    req: IncomingMessage,
    res: ServerResponse,
    t: ResourceType,
    ns: string,
    name: string,
    sub: string | undefined,
    q: URLSearchParams,
    body: Buffer,
    method: string,
  ): Promise<void> {
    if (sub === 'finalize') {
      if (method !== 'PUT') throw Errors.methodNotAllowed();
      const incoming = this.decodeBody(req, body) as KObject;
      const cur = this.api.get(t, ns, name);
      cur.spec = { ...(cur.spec as Dict), finalizers: (incoming.spec as Dict | undefined)?.finalizers ?? [] };
      const r = await this.api.update(t, ns, name, cur, this.writeOptions(q));
      return send(res, 200, r.object);
    }
    switch (method) {
      case 'GET':
        return this.respondObject(req, res, t, this.api.get(t, ns, name), 200, q);
      case 'PUT': {
        const r = await this.api.update(t, ns, name, this.decodeBody(req, body), this.writeOptions(q, sub));
        warningHeaders(res, r.warnings);
        return send(res, 200, r.object);
      }
      case 'PATCH': {
        const ct = mediaType(req.headers['content-type']);
        const r = await this.api.patch(t, ns, name, ct, body, this.writeOptions(q, sub));
        warningHeaders(res, r.warnings);
        return send(res, r.created && ct === PATCH_TYPES.apply ? 201 : 200, r.object);
      }
      case 'DELETE': {
        if (sub !== undefined) throw Errors.methodNotAllowed();
        const r = await this.api.delete(t, ns, name, this.deleteOptions(req, q, body));
        warningHeaders(res, r.warnings);
        return send(res, 200, r.body);
      }
    }
    throw Errors.methodNotAllowed();
  }

  private watch(
    req: IncomingMessage,
    res: ServerResponse,
    t: ResourceType,
    namespace: string | undefined,
    q: URLSearchParams,
    listOpts: WatchOptions,
  ): void {
    const table = wantsTable(req.headers.accept);
    const sie = q.get('sendInitialEvents');
    const opts: WatchOptions = {
      ...listOpts,
      allowWatchBookmarks: q.get('allowWatchBookmarks') === 'true',
      ...(q.get('timeoutSeconds') ? { timeoutSeconds: Number(q.get('timeoutSeconds')) } : {}),
      ...(sie !== null ? { sendInitialEvents: sie === 'true' } : {}),
    };
    if (
      opts.sendInitialEvents === true &&
      (listOpts.resourceVersionMatch !== 'NotOlderThan' || !opts.allowWatchBookmarks)
    )
      throw Errors.invalid('ListOptions', 'meta.k8s.io', '', [
        {
          reason: 'FieldValueForbidden',
          field: 'sendInitialEvents',
          message:
            'Forbidden: sendInitialEvents is forbidden for watch unless resourceVersionMatch is set to NotOlderThan and allowWatchBookmarks is true',
        },
      ]);
    res.writeHead(200, {
      'Content-Type': 'application/json',
      'Transfer-Encoding': 'chunked',
      'Cache-Control': 'no-cache, private',
    });
    res.flushHeaders();
    let first = true;
    const conn: WatchConn = { type: t, namespace, res, stop: () => undefined, silent: false };
    const sink = {
      event: (type: string, object: unknown): void => {
        if (conn.silent || res.writableEnded || res.destroyed) return;
        let o = object;
        if (table && (type === 'ADDED' || type === 'MODIFIED' || type === 'DELETED')) {
          o = toTable(
            t,
            [object as KObject],
            { resourceVersion: (object as KObject).metadata.resourceVersion },
            this.includeObject(q),
            this.api.clock.now(),
            first,
          );
          first = false;
        }
        res.write(`${JSON.stringify({ type, object: o })}\n`);
      },
      close: (): void => {
        this.watches.delete(conn);
        if (!res.writableEnded) res.end();
      },
    };
    this.watches.add(conn);
    conn.stop = this.api.watch(t, namespace, opts, sink);
    res.on('close', () => {
      conn.stop();
      this.watches.delete(conn);
    });
  }

  private async podLog(
    req: IncomingMessage,
    res: ServerResponse,
    t: ResourceType,
    ns: string,
    name: string,
    q: URLSearchParams,
  ): Promise<void> {
    if (req.method !== 'GET') throw Errors.methodNotAllowed();
    const pod = this.api.get(t, ns, name);
    const containers = (((pod.spec as Dict).containers as Dict[] | undefined) ?? []).map((c) =>
      String(c.name),
    );
    let container = q.get('container');
    if (!container) {
      if (containers.length !== 1)
        throw Errors.badRequest(
          `a container name must be specified for pod ${name}, choose one of: [${containers.join(' ')}]`,
        );
      container = containers[0]!;
    }
    if (!containers.includes(container))
      throw Errors.badRequest(`container ${container} is not valid for pod ${name}`);
    if (!this.logSource || !(pod.spec as Dict).nodeName)
      throw Errors.badRequest(
        `container "${container}" in pod "${name}" is waiting to start: ContainerCreating`,
      );
    const since = q.get('sinceTime');
    const opts: LogOptions = {
      follow: q.get('follow') === 'true',
      timestamps: q.get('timestamps') === 'true',
      previous: q.get('previous') === 'true',
      ...(since ? { sinceTime: Date.parse(since) } : {}),
      ...(q.get('sinceSeconds') ? { sinceSeconds: Number(q.get('sinceSeconds')) } : {}),
      ...(q.get('tailLines') ? { tailLines: Number(q.get('tailLines')) } : {}),
      ...(q.get('limitBytes') ? { limitBytes: Number(q.get('limitBytes')) } : {}),
    };
    const ac = new AbortController();
    res.on('close', () => ac.abort());
    await this.logSource.stream(pod, container, opts, res, ac.signal);
  }

  private async eviction(
    res: ServerResponse,
    t: ResourceType,
    ns: string,
    name: string,
    body: Buffer,
    req: IncomingMessage,
  ): Promise<void> {
    if (req.method !== 'POST') throw Errors.methodNotAllowed();
    const pod = this.api.get(t, ns, name);
    const ev = (this.decodeBody(req, body) as Dict | undefined) ?? {};
    const del = (ev.deleteOptions as DeleteOptions | undefined) ?? {};
    if (this.evict) await this.evict(pod, del);
    else await this.api.delete(t, ns, name, del);
    send(res, 201, successStatus());
  }

  private async binding(
    res: ServerResponse,
    t: ResourceType,
    ns: string,
    name: string,
    body: Buffer,
    req: IncomingMessage,
  ): Promise<void> {
    if (req.method !== 'POST') throw Errors.methodNotAllowed();
    const b = this.decodeBody(req, body) as Dict;
    const node = (b.target as Dict | undefined)?.name as string | undefined;
    const pod = this.api.get(t, ns, name);
    if ((pod.spec as Dict).nodeName)
      throw Errors.conflict(
        'pods',
        '',
        name,
        `pod ${name} is already assigned to node "${String((pod.spec as Dict).nodeName)}"`,
      );
    (pod.spec as Dict).nodeName = node;
    await this.api.update(t, ns, name, pod, { fieldManager: 'kube-scheduler' });
    send(res, 201, successStatus());
  }

  // ------------------------------------------------------------ discovery
  private groupList(): {
    kind: string;
    apiVersion: string;
    groups: {
      name: string;
      versions: { groupVersion: string; version: string }[];
      preferredVersion: { groupVersion: string; version: string };
    }[];
  } {
    const groups = new Map<string, Set<string>>();
    for (const t of this.api.allTypes()) {
      if (t.group === '') continue;
      const s = groups.get(t.group) ?? new Set<string>();
      s.add(t.version);
      groups.set(t.group, s);
    }
    const names = [...groups.keys()].sort((a, b) => {
      const ia = GROUP_ORDER.indexOf(a);
      const ib = GROUP_ORDER.indexOf(b);
      return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib) || a.localeCompare(b);
    });
    return {
      kind: 'APIGroupList',
      apiVersion: 'v1',
      groups: names.map((name) => {
        const versions = [...groups.get(name)!].map((v) => ({ groupVersion: `${name}/${v}`, version: v }));
        return { name, versions, preferredVersion: versions[0]! };
      }),
    };
  }

  private resourceList(group: string, version: string, types: readonly ResourceType[]): Dict {
    const resources: Dict[] = [];
    for (const t of types) {
      resources.push({
        name: t.plural,
        singularName: t.singular,
        namespaced: t.namespaced,
        kind: t.kind,
        verbs: t.verbs,
        ...(t.shortNames.length ? { shortNames: t.shortNames } : {}),
        ...(t.categories.length ? { categories: t.categories } : {}),
      });
      for (const sub of t.subresources) {
        const extra: Dict =
          sub === 'eviction'
            ? { group: 'policy', version: 'v1', kind: 'Eviction', verbs: ['create'] }
            : sub === 'binding'
              ? { kind: 'Binding', verbs: ['create'] }
              : sub === 'log'
                ? { kind: 'Pod', verbs: ['get'] }
                : sub === 'scale'
                  ? { group: 'autoscaling', version: 'v1', kind: 'Scale', verbs: ['get', 'patch', 'update'] }
                  : sub === 'finalize'
                    ? { kind: t.kind, verbs: ['update'] }
                    : { kind: t.kind, verbs: ['get', 'patch', 'update'] };
        resources.push({ name: `${t.plural}/${sub}`, singularName: '', namespaced: t.namespaced, ...extra });
      }
    }
    return {
      kind: 'APIResourceList',
      apiVersion: 'v1',
      groupVersion: group === '' ? version : `${group}/${version}`,
      resources,
    };
  }

  private openApiIndex(): Dict {
    const paths: Dict = {};
    const gvs = new Set(
      this.api.allTypes().map((t) => (t.group === '' ? `api/${t.version}` : `apis/${t.group}/${t.version}`)),
    );
    for (const gv of gvs)
      paths[gv] = { serverRelativeURL: `/openapi/v3/${gv}?hash=${this.api.store.currentRv}` };
    return { paths };
  }

  /**
   * A skeleton OpenAPI v3 document: PATCH operations per kind that declare the
   * `fieldValidation` parameter, which is what kubectl and helm probe before relying
   * on server-side field validation (k8s.io/cli-runtime query_param_verifier_v3.go).
   * No component schemas: clients fall back to their compiled-in types.
   */
  private openApiDoc(gvPath: string): Dict {
    const [first, a, b] = gvPath.split('/');
    const group = first === 'api' ? '' : (a ?? '');
    const version = first === 'api' ? (a ?? '') : (b ?? '');
    const types = this.api.allTypes().filter((t) => t.group === group && t.version === version);
    if (types.length === 0) throw Errors.pathNotFound();
    const paths: Dict = {};
    const base = group === '' ? `/api/${version}` : `/apis/${group}/${version}`;
    for (const t of types) {
      const p = `${base}${t.namespaced ? '/namespaces/{namespace}' : ''}/${t.plural}/{name}`;
      paths[p] = {
        patch: {
          'x-kubernetes-action': 'patch',
          'x-kubernetes-group-version-kind': { group: t.group, version: t.version, kind: t.kind },
          parameters: [
            { name: 'dryRun', in: 'query', schema: { type: 'string', uniqueItems: true } },
            { name: 'fieldManager', in: 'query', schema: { type: 'string', uniqueItems: true } },
            { name: 'fieldValidation', in: 'query', schema: { type: 'string', uniqueItems: true } },
            { name: 'force', in: 'query', schema: { type: 'boolean', uniqueItems: true } },
          ],
          responses: { '200': { description: 'OK' } },
        },
      };
    }
    return {
      openapi: '3.0.0',
      info: { title: 'Kubernetes', version: SERVER_VERSION.gitVersion },
      paths,
      components: { schemas: {} },
    };
  }
}
