// The programs the benchmark compares against (Debian's haproxy and socat):
// found on PATH, or installed with apt-get when missing and running as root.
import { spawnSync } from 'node:child_process';

export function ensurePrograms(packages: Record<string, string>): void {
  const missing = Object.entries(packages).filter(([program]) => spawnSync('sh', ['-c', `command -v ${program}`]).status !== 0);
  if (missing.length === 0) return;
  const names = missing.map(([, pkg]) => pkg);
  if (process.getuid?.() !== 0) throw new Error(`missing ${names.join(', ')}: install them (apt-get install ${names.join(' ')})`);
  console.log(`installing ${names.join(', ')} …`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  for (const args of [
    ['update', '-qq'],
    ['install', '-y', '-qq', '--no-install-recommends', ...names],
  ]) {
    const result = spawnSync('apt-get', args, { env, stdio: ['ignore', 'ignore', 'inherit'] });
    if (result.status !== 0) throw new Error(`apt-get ${args.join(' ')} failed`);
  }
}

export function programVersion(command: string, args: string[], pattern: RegExp): string {
  const result = spawnSync(command, args, { encoding: 'utf8' });
  return pattern.exec(`${result.stdout}${result.stderr}`)?.[1] ?? 'unknown';
}
