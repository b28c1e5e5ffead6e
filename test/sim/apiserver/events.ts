/**
 * Events: one stored object, two APIs. The real server keeps each Event once (as
 * core/v1) and serves it both as core/v1 `Event` and as events.k8s.io/v1 `Event`,
 * converting on every read and write; a create through one API is listed, watched,
 * updated and deleted through the other. Here: the field mapping, the field-selector
 * label mapping of events.k8s.io/v1, and the validation of both request versions.
 *
 * - Conversion: k8s.io/kubernetes pkg/apis/events/v1/conversion.go
 *   (`Convert_v1_Event_To_core_Event`, `Convert_core_Event_To_v1_Event`); the internal
 *   field ReportingController is `reportingComponent` in core/v1 and
 *   `reportingController` in events.k8s.io/v1 (k8s.io/api core/v1 and events/v1 types.go).
 *   https://kubernetes.io/docs/reference/kubernetes-api/cluster-resources/event-v1/
 * - Field selectors: core/v1 `ToSelectableFields` (pkg/registry/core/event/strategy.go;
 *   `source` is source.component, else reportingComponent) and the events.k8s.io/v1
 *   label conversion `AddFieldLabelConversionsForEvent` (conversion.go above).
 * - Validation: pkg/apis/core/validation/events.go (`ValidateEventCreate`,
 *   `ValidateEventUpdate`, `legacyValidateEvent`).
 *
 * Difference on purpose: Go prints zero values a client left out (`source: {}`,
 * `firstTimestamp: null`, `eventTime: null`, `regarding: {}`); the sim converts only
 * the fields present, so such fields are absent instead.
 */
import type { StatusCause } from './errors.js';
import { deepEqual, isDict, type Dict, type KObject, str } from './types.js';

/** core/v1 Event field → events.k8s.io/v1 Event field, where the names differ. */
export const CORE_TO_EVENTS_V1: Readonly<Record<string, string>> = {
  involvedObject: 'regarding',
  message: 'note',
  source: 'deprecatedSource',
  firstTimestamp: 'deprecatedFirstTimestamp',
  lastTimestamp: 'deprecatedLastTimestamp',
  count: 'deprecatedCount',
  reportingComponent: 'reportingController',
};
// Same name in both: metadata, reason, type, eventTime, series, action, related,
// reportingInstance.

const EVENTS_V1_TO_CORE: Readonly<Record<string, string>> = Object.fromEntries(
  Object.entries(CORE_TO_EVENTS_V1).map(([core, v1]) => [v1, core]),
);

function renamed(o: KObject, names: Readonly<Record<string, string>>, apiVersion: string): KObject {
  const out: Dict = {};
  for (const [k, v] of Object.entries(o)) out[names[k] ?? k] = v;
  return { ...(out as KObject), apiVersion, kind: 'Event' };
}

/** An events.k8s.io/v1 Event as the core/v1 Event stored for it. */
export function eventsV1ToCore(o: KObject): KObject {
  return renamed(o, EVENTS_V1_TO_CORE, 'v1');
}

/** A stored core/v1 Event as events.k8s.io/v1 serves it. */
export function coreToEventsV1(o: KObject): KObject {
  return renamed(o, CORE_TO_EVENTS_V1, 'events.k8s.io/v1');
}

/**
 * events.k8s.io/v1 field-selector labels → the core/v1 selectable fields they select on
 * (`AddFieldLabelConversionsForEvent`); anything else is "field label not supported".
 */
export const EVENTS_V1_FIELD_LABELS: Readonly<Record<string, string>> = {
  reason: 'reason',
  'regarding.kind': 'involvedObject.kind',
  'regarding.namespace': 'involvedObject.namespace',
  'regarding.name': 'involvedObject.name',
  'regarding.uid': 'involvedObject.uid',
  'regarding.apiVersion': 'involvedObject.apiVersion',
  'regarding.resourceVersion': 'involvedObject.resourceVersion',
  'regarding.fieldPath': 'involvedObject.fieldPath',
  reportingController: 'reportingComponent',
  source: 'source',
  type: 'type',
  'metadata.namespace': 'metadata.namespace',
  'metadata.name': 'metadata.name',
};

// ---------------------------------------------------------------- validation
const REPORTING_INSTANCE_LENGTH_LIMIT = 128;
const ACTION_LENGTH_LIMIT = 128;
const REASON_LENGTH_LIMIT = 128;
const NOTE_LENGTH_LIMIT = 1024;

/** A request through core/v1 or through events.k8s.io/v1 (the strict API). */
export type EventApi = 'core/v1' | 'events.k8s.io/v1';

const QUALIFIED_NAME = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** apimachinery `IsQualifiedName`: [prefix/]name, the name 63 characters at most. */
function qualifiedNameCauses(value: string, field: string): StatusCause[] {
  const parts = value.split('/');
  const name = parts.at(-1)!;
  const prefix = parts.length === 2 ? parts[0]! : undefined;
  const ok =
    parts.length <= 2 &&
    name.length <= 63 &&
    QUALIFIED_NAME.test(name) &&
    (prefix === undefined || (prefix.length <= 253 && DNS1123_SUBDOMAIN.test(prefix)));
  return ok || value === ''
    ? []
    : [
        {
          reason: 'FieldValueInvalid',
          field,
          message: `Invalid value: "${value}": must be a qualified name ([prefix/]name, the name of alphanumerics, '-', '_' or '.', starting and ending alphanumeric)`,
        },
      ];
}

const required = (field: string): StatusCause => ({
  reason: 'FieldValueRequired',
  field,
  message: 'Required value',
});
const invalid = (field: string, value: string, detail: string): StatusCause => ({
  reason: 'FieldValueInvalid',
  field,
  message: `Invalid value: "${value}": ${detail}`,
});

/** `legacyValidateEvent`, on the core/v1 form, for requests through either API. */
function legacyCauses(e: KObject, api: EventApi): StatusCause[] {
  const out: StatusCause[] = [];
  const ns = e.metadata.namespace ?? '';
  const involvedNs = str((e.involvedObject as Dict | undefined)?.namespace ?? '');
  const controllerField = api === 'core/v1' ? 'reportingComponent' : 'reportingController';
  if (!e.eventTime) {
    if (involvedNs === '' ? ns !== '' && ns !== 'default' : ns !== involvedNs)
      out.push(invalid('involvedObject.namespace', involvedNs, 'does not match event.namespace'));
  } else {
    if (involvedNs === '' && ns !== 'default' && ns !== 'kube-system')
      out.push(invalid('involvedObject.namespace', involvedNs, 'does not match event.namespace'));
    const controller = str(e.reportingComponent ?? '');
    if (controller === '') out.push(required(controllerField));
    out.push(...qualifiedNameCauses(controller, controllerField));
    const instance = str(e.reportingInstance ?? '');
    if (instance === '') out.push(required('reportingInstance'));
    if (instance.length > REPORTING_INSTANCE_LENGTH_LIMIT)
      out.push(
        invalid('reportingInstance', '', `can have at most ${REPORTING_INSTANCE_LENGTH_LIMIT} characters`),
      );
    const action = str(e.action ?? '');
    if (action === '') out.push(required('action'));
    if (action.length > ACTION_LENGTH_LIMIT)
      out.push(invalid('action', '', `can have at most ${ACTION_LENGTH_LIMIT} characters`));
    const reason = str(e.reason ?? '');
    if (reason === '') out.push(required('reason'));
    if (reason.length > REASON_LENGTH_LIMIT)
      out.push(invalid('reason', '', `can have at most ${REASON_LENGTH_LIMIT} characters`));
    if (str(e.message ?? '').length > NOTE_LENGTH_LIMIT)
      out.push(invalid('message', '', `can have at most ${NOTE_LENGTH_LIMIT} characters`));
  }
  return out;
}

function seriesCauses(e: KObject): StatusCause[] {
  if (!isDict(e.series)) return [];
  const out: StatusCause[] = [];
  if (Number(e.series.count ?? 0) < 2) out.push(invalid('series.count', '', 'should be at least 2'));
  if (!e.series.lastObservedTime) out.push(required('series.lastObservedTime'));
  return out;
}

/** `ValidateEventCreate` for a core/v1 Event (the stored form) created through `api`. */
export function eventCreateCauses(e: KObject, api: EventApi): StatusCause[] {
  const out = legacyCauses(e, api);
  if (api === 'core/v1') return out;
  out.push(...seriesCauses(e));
  if (!e.eventTime) out.push(required('eventTime'));
  if (e.type !== 'Normal' && e.type !== 'Warning')
    out.push(invalid('type', '', `has invalid value: ${str(e.type ?? '')}`));
  for (const f of ['firstTimestamp', 'lastTimestamp'])
    if (e[f]) out.push(invalid(f, '', 'needs to be unset'));
  if (Number(e.count ?? 0) !== 0) out.push(invalid('count', '', 'needs to be unset'));
  const source = (e.source as Dict | undefined) ?? {};
  if (str(source.component ?? '') !== '' || str(source.host ?? '') !== '')
    out.push(invalid('source', '', 'needs to be unset'));
  return out;
}

/** Fields an update through events.k8s.io/v1 may not change (core/v1 names, as upstream reports them). */
const IMMUTABLE = [
  'involvedObject',
  'reason',
  'message',
  'source',
  'firstTimestamp',
  'lastTimestamp',
  'count',
  'type',
  'eventTime',
  'action',
  'related',
  'reportingComponent',
  'reportingInstance',
] as const;

/** `ValidateEventUpdate` for core/v1 Events (stored form) updated through `api`. */
export function eventUpdateCauses(next: KObject, old: KObject, api: EventApi): StatusCause[] {
  const out = legacyCauses(next, api);
  if (api === 'core/v1') return out;
  if (!deepEqual(next.series, old.series)) out.push(...seriesCauses(next));
  for (const f of IMMUTABLE)
    if (!deepEqual(next[f] ?? null, old[f] ?? null))
      out.push({
        reason: 'FieldValueInvalid',
        field: f === 'reportingComponent' ? 'reportingController' : f,
        message: 'Invalid value: field is immutable',
      });
  return out;
}
