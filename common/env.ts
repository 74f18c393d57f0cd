// Reading CCCP_* settings from the environment, with errors that name the variable.
import { readFileSync } from 'node:fs';

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

export function envInteger(env: NodeJS.ProcessEnv, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const value = Number(raw.trim());
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(`${name} must be a whole number from ${min} to ${max}, not "${raw}"`);
  }
  return value;
}

export function envList(env: NodeJS.ProcessEnv, name: string): string[] {
  return (env[name] ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

export function envString(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const raw = env[name]?.trim();
  return raw ? raw : undefined;
}

/** The admin token, from CCCP_ADMIN_TOKEN or the file named by CCCP_ADMIN_TOKEN_FILE (a mounted Secret). */
export function adminTokenFromEnv(env: NodeJS.ProcessEnv): string {
  const file = envString(env, 'CCCP_ADMIN_TOKEN_FILE');
  const token = file ? readFileSync(file, 'utf8').trim() : envString(env, 'CCCP_ADMIN_TOKEN');
  if (!token || token.length < 16)
    throw new ConfigError('the admin API on TCP needs CCCP_ADMIN_TOKEN or CCCP_ADMIN_TOKEN_FILE with at least 16 characters');
  return token;
}
