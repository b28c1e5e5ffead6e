/** Error codes of the operator: one registry, each with a stable code and its context. */
export const OperatorErrorCode = {
  CONFIG_INVALID: 'ERR_OPERATOR_CONFIG_INVALID',
  POOLS_INVALID: 'ERR_OPERATOR_POOLS_INVALID',
  DRV_PATH_INVALID: 'ERR_OPERATOR_DRV_PATH_INVALID',
  CRD_MISSING: 'ERR_OPERATOR_CRD_MISSING',
  LEADERSHIP_LOST: 'ERR_OPERATOR_LEADERSHIP_LOST',
  API_ERROR: 'ERR_OPERATOR_API_ERROR',
} as const;

export type OperatorErrorCode = (typeof OperatorErrorCode)[keyof typeof OperatorErrorCode];

export class OperatorError extends Error {
  override readonly name = 'OperatorError';
  constructor(
    readonly code: OperatorErrorCode,
    message: string,
    readonly context: Readonly<Record<string, string | number | boolean | undefined>> = {},
  ) {
    super(message);
  }
}
