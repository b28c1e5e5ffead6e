/** Error codes of the gateway (configuration, SSH, sessions). */
export const GatewayErrorCode = {
  CONFIG_INVALID: 'ERR_GATEWAY_CONFIG_INVALID',
  AUTHORIZED_KEYS_INVALID: 'ERR_GATEWAY_AUTHORIZED_KEYS_INVALID',
  HOST_KEY_INVALID: 'ERR_GATEWAY_HOST_KEY_INVALID',
  PERMISSION_DENIED: 'ERR_GATEWAY_PERMISSION_DENIED',
  UNSUPPORTED_OPERATION: 'ERR_GATEWAY_UNSUPPORTED_OPERATION',
  SESSION_LIMIT: 'ERR_GATEWAY_SESSION_LIMIT',
  BUILD_FAILED: 'ERR_GATEWAY_BUILD_FAILED',
} as const;

export type GatewayErrorCode = (typeof GatewayErrorCode)[keyof typeof GatewayErrorCode];

export class GatewayError extends Error {
  override readonly name = 'GatewayError';
  constructor(
    readonly code: GatewayErrorCode,
    message: string,
    readonly context: Readonly<Record<string, string | number | boolean | undefined>> = {},
  ) {
    super(message);
  }
}
