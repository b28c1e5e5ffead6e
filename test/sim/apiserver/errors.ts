/**
 * Every failure the simulated API server can answer with, as a `metav1.Status`
 * (https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-deletion and
 * https://github.com/kubernetes/apimachinery/blob/master/pkg/api/errors/errors.go).
 * The messages copy apimachinery's wording so that clients which match on text
 * (kubectl, helm) behave as with a real server.
 */

export interface StatusCause {
  readonly reason?: string;
  readonly message: string;
  readonly field?: string;
}

export interface StatusDetails {
  name?: string;
  group?: string;
  kind?: string;
  uid?: string;
  causes?: StatusCause[];
  retryAfterSeconds?: number;
}

export interface Status {
  kind: 'Status';
  apiVersion: 'v1';
  metadata: Record<string, never>;
  status: 'Success' | 'Failure';
  message?: string;
  reason?: string;
  details?: StatusDetails;
  code: number;
}

export class ApiError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly details?: StatusDetails,
    /** Extra response headers (Retry-After for 429). */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }

  toStatus(): Status {
    return {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: this.message,
      reason: this.reason,
      ...(this.details ? { details: this.details } : {}),
      code: this.code,
    };
  }
}

/** `pods "x" not found`; group-qualified resource for non-core groups (`jobs.batch "x" not found`). */
export function qualified(plural: string, group: string): string {
  return group === '' ? plural : `${plural}.${group}`;
}

export const Errors = {
  notFound: (plural: string, group: string, name: string, kind?: string): ApiError =>
    new ApiError(404, 'NotFound', `${qualified(plural, group)} "${name}" not found`, {
      name,
      group,
      kind: kind ?? plural,
    }),
  pathNotFound: (): ApiError =>
    new ApiError(404, 'NotFound', 'the server could not find the requested resource'),
  alreadyExists: (plural: string, group: string, name: string): ApiError =>
    new ApiError(409, 'AlreadyExists', `${qualified(plural, group)} "${name}" already exists`, {
      name,
      group,
      kind: plural,
    }),
  conflict: (plural: string, group: string, name: string, why: string): ApiError =>
    new ApiError(
      409,
      'Conflict',
      `Operation cannot be fulfilled on ${qualified(plural, group)} "${name}": ${why}`,
      {
        name,
        group,
        kind: plural,
      },
    ),
  modified: (plural: string, group: string, name: string): ApiError =>
    Errors.conflict(
      plural,
      group,
      name,
      'the object has been modified; please apply your changes to the latest version and try again',
    ),
  invalid: (kind: string, group: string, name: string, causes: StatusCause[]): ApiError =>
    new ApiError(
      422,
      'Invalid',
      `${group === '' ? kind : `${kind}.${group}`} "${name}" is invalid: ${causes
        .map((c) => (c.field ? `${c.field}: ${c.message}` : c.message))
        .join(', ')}`,
      { name, group, kind, causes },
    ),
  badRequest: (message: string, causes?: StatusCause[]): ApiError =>
    new ApiError(400, 'BadRequest', message, causes ? { causes } : undefined),
  forbidden: (plural: string, group: string, name: string, why: string): ApiError =>
    new ApiError(403, 'Forbidden', `${qualified(plural, group)} "${name}" is forbidden: ${why}`, {
      name,
      group,
      kind: plural,
    }),
  methodNotAllowed: (): ApiError =>
    new ApiError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource'),
  gone: (message: string): ApiError => new ApiError(410, 'Expired', message),
  unsupportedMediaType: (contentType: string, accepted: readonly string[]): ApiError =>
    new ApiError(
      415,
      'UnsupportedMediaType',
      `the body of the request was in an unknown format - accepted media types include: ${accepted.join(', ')}`,
      { causes: [{ reason: 'UnsupportedMediaType', message: contentType }] },
    ),
  notAcceptable: (accept: string): ApiError =>
    new ApiError(
      406,
      'NotAcceptable',
      `only the following media types are accepted: application/json (got ${accept})`,
    ),
  tooManyRequests: (message: string, retryAfterSeconds: number): ApiError =>
    new ApiError(
      429,
      'TooManyRequests',
      message,
      { retryAfterSeconds },
      { 'Retry-After': String(retryAfterSeconds) },
    ),
  internal: (message: string): ApiError =>
    new ApiError(500, 'InternalError', `Internal error occurred: ${message}`, {
      causes: [{ message }],
    }),
  timeout: (message: string, retryAfterSeconds = 1): ApiError =>
    new ApiError(504, 'Timeout', message, { retryAfterSeconds }),
};

export function successStatus(details?: StatusDetails): Status {
  return {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Success',
    ...(details ? { details } : {}),
    code: 200,
  };
}
