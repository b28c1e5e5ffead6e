export { loadOperatorConfig, loadPoolsFile, operatorConfigHelp, type OperatorConfig } from './config.js';
export { OperatorError, OperatorErrorCode } from './errors.js';
export { desiredJob, ttlPatch, type JobSettings } from './job-builder.js';
export { jobName, nixBuildName, parseDrvPath } from './names.js';
export { startOperator, type RunningOperator } from './operator.js';
export { planReconcile, type Plan, type Policy, type World } from './plan.js';
export { choosePool, parsePools, type PoolConfig } from './pools.js';
export * from './types.js';
