/**
 * Decoding of the Kubernetes protobuf envelope, enough for what Helm 3 and 4 send:
 * release Secrets/ConfigMaps (`application/vnd.kubernetes.protobuf`, no JSON
 * fallback) and DeleteOptions. https://kubernetes.io/docs/reference/using-api/api-concepts/#protobuf-encoding
 * Field numbers: k8s.io/api/core/v1/generated.proto, k8s.io/apimachinery/pkg/apis/meta/v1/generated.proto.
 * Responses are always JSON (clients negotiate with `Accept: …protobuf, application/json`).
 */
import { Errors } from './errors.js';
import { rfc3339, type Dict } from './types.js';

/** `k8s\0`: the magic prefix of protobuf-encoded objects. */
export const PROTOBUF_MAGIC = Buffer.from([0x6b, 0x38, 0x73, 0x00]);
export const PROTOBUF_TYPE = 'application/vnd.kubernetes.protobuf';

interface Field {
  no: number;
  wire: number;
  int?: bigint;
  bytes?: Buffer;
}

function fields(buf: Buffer): Field[] {
  const out: Field[] = [];
  let p = 0;
  const varint = (): bigint => {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      if (p >= buf.length) throw Errors.badRequest('protobuf: truncated varint');
      const b = buf[p++]!;
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result;
      shift += 7n;
    }
  };
  while (p < buf.length) {
    const tag = Number(varint());
    const no = tag >>> 3;
    const wire = tag & 7;
    if (wire === 0) out.push({ no, wire, int: varint() });
    else if (wire === 2) {
      const len = Number(varint());
      if (p + len > buf.length) throw Errors.badRequest('protobuf: truncated field');
      out.push({ no, wire, bytes: buf.subarray(p, p + len) });
      p += len;
    } else if (wire === 1) {
      out.push({ no, wire, bytes: buf.subarray(p, p + 8) });
      p += 8;
    } else if (wire === 5) {
      out.push({ no, wire, bytes: buf.subarray(p, p + 4) });
      p += 4;
    } else throw Errors.badRequest(`protobuf: unsupported wire type ${wire}`);
  }
  return out;
}

const str = (f: Field): string => f.bytes?.toString('utf8') ?? '';

function mapEntry(f: Field): [string, Buffer] {
  let k = '';
  let v: Buffer = Buffer.alloc(0);
  for (const e of fields(f.bytes!)) {
    if (e.no === 1) k = str(e);
    if (e.no === 2) v = e.bytes!;
  }
  return [k, v];
}

function time(f: Field): string {
  let seconds = 0n;
  for (const e of fields(f.bytes!)) if (e.no === 1) seconds = e.int!;
  return rfc3339(Number(seconds) * 1000);
}

function ownerReference(buf: Buffer): Dict {
  const o: Dict = {};
  for (const f of fields(buf)) {
    if (f.no === 5) o.apiVersion = str(f);
    if (f.no === 1) o.kind = str(f);
    if (f.no === 3) o.name = str(f);
    if (f.no === 4) o.uid = str(f);
    if (f.no === 6) o.controller = f.int === 1n;
    if (f.no === 7) o.blockOwnerDeletion = f.int === 1n;
  }
  return o;
}

function objectMeta(buf: Buffer): Dict {
  const m: Dict = {};
  const labels: Record<string, string> = {};
  const annotations: Record<string, string> = {};
  const owners: Dict[] = [];
  const finalizers: string[] = [];
  for (const f of fields(buf)) {
    switch (f.no) {
      case 1:
        m.name = str(f);
        break;
      case 2:
        m.generateName = str(f);
        break;
      case 3:
        m.namespace = str(f);
        break;
      case 5:
        m.uid = str(f);
        break;
      case 6:
        m.resourceVersion = str(f);
        break;
      case 7:
        m.generation = Number(f.int);
        break;
      case 8:
        m.creationTimestamp = time(f);
        break;
      case 11: {
        const [k, v] = mapEntry(f);
        labels[k] = v.toString('utf8');
        break;
      }
      case 12: {
        const [k, v] = mapEntry(f);
        annotations[k] = v.toString('utf8');
        break;
      }
      case 13:
        owners.push(ownerReference(f.bytes!));
        break;
      case 14:
        finalizers.push(str(f));
        break;
    }
  }
  if (Object.keys(labels).length) m.labels = labels;
  if (Object.keys(annotations).length) m.annotations = annotations;
  if (owners.length) m.ownerReferences = owners;
  if (finalizers.length) m.finalizers = finalizers;
  for (const k of ['name', 'generateName', 'namespace', 'uid', 'resourceVersion'])
    if (m[k] === '') delete m[k];
  return m;
}

function secret(buf: Buffer): Dict {
  const o: Dict = { metadata: {} };
  const data: Record<string, string> = {};
  const stringData: Record<string, string> = {};
  for (const f of fields(buf)) {
    if (f.no === 1) o.metadata = objectMeta(f.bytes!);
    if (f.no === 2) {
      const [k, v] = mapEntry(f);
      data[k] = v.toString('base64');
    }
    if (f.no === 3) o.type = str(f);
    if (f.no === 4) {
      const [k, v] = mapEntry(f);
      stringData[k] = v.toString('utf8');
    }
    if (f.no === 5) o.immutable = f.int === 1n;
  }
  if (Object.keys(data).length) o.data = data;
  if (Object.keys(stringData).length) o.stringData = stringData;
  return o;
}

function configMap(buf: Buffer): Dict {
  const o: Dict = { metadata: {} };
  const data: Record<string, string> = {};
  const binaryData: Record<string, string> = {};
  for (const f of fields(buf)) {
    if (f.no === 1) o.metadata = objectMeta(f.bytes!);
    if (f.no === 2) {
      const [k, v] = mapEntry(f);
      data[k] = v.toString('utf8');
    }
    if (f.no === 3) {
      const [k, v] = mapEntry(f);
      binaryData[k] = v.toString('base64');
    }
    if (f.no === 4) o.immutable = f.int === 1n;
  }
  if (Object.keys(data).length) o.data = data;
  if (Object.keys(binaryData).length) o.binaryData = binaryData;
  return o;
}

function deleteOptions(buf: Buffer): Dict {
  const o: Dict = {};
  const dryRun: string[] = [];
  for (const f of fields(buf)) {
    if (f.no === 1) o.gracePeriodSeconds = Number(f.int);
    if (f.no === 2) {
      const pre: Dict = {};
      for (const e of fields(f.bytes!)) {
        if (e.no === 1) pre.uid = str(e);
        if (e.no === 2) pre.resourceVersion = str(e);
      }
      o.preconditions = pre;
    }
    if (f.no === 3) o.orphanDependents = f.int === 1n;
    if (f.no === 4) o.propagationPolicy = str(f);
    if (f.no === 5) dryRun.push(str(f));
  }
  if (dryRun.length) o.dryRun = dryRun;
  return o;
}

function namespace(buf: Buffer): Dict {
  const o: Dict = { metadata: {} };
  for (const f of fields(buf)) {
    if (f.no === 1) o.metadata = objectMeta(f.bytes!);
    if (f.no === 2) {
      const finalizers: string[] = [];
      for (const e of fields(f.bytes!)) if (e.no === 1) finalizers.push(str(e));
      o.spec = finalizers.length ? { finalizers } : {};
    }
  }
  return o;
}

const DECODERS: Record<string, (b: Buffer) => Dict> = {
  'v1/Namespace': namespace,
  'v1/Secret': secret,
  'v1/ConfigMap': configMap,
  'v1/DeleteOptions': deleteOptions,
  'meta.k8s.io/v1/DeleteOptions': deleteOptions,
};

/** Decodes `k8s\0` + runtime.Unknown{typeMeta, raw}; 415 for kinds it cannot read. */
export function decodeProtobuf(body: Buffer, accepted: readonly string[]): Dict {
  if (!body.subarray(0, 4).equals(PROTOBUF_MAGIC))
    throw Errors.badRequest('protobuf: missing k8s magic prefix');
  let apiVersion = '';
  let kind = '';
  let raw: Buffer = Buffer.alloc(0);
  for (const f of fields(body.subarray(4))) {
    if (f.no === 1) {
      for (const t of fields(f.bytes!)) {
        if (t.no === 1) apiVersion = str(t);
        if (t.no === 2) kind = str(t);
      }
    }
    if (f.no === 2) raw = f.bytes!;
  }
  const dec = DECODERS[`${apiVersion}/${kind}`];
  if (!dec) throw Errors.unsupportedMediaType(PROTOBUF_TYPE, accepted);
  return { apiVersion, kind, ...dec(raw) };
}
