// What the benchmarks share: their command-line flags, the programs they
// compare against (Debian's haproxy and socat: found on PATH, or installed
// with apt-get when missing and running as root), and the compiled build.
import { spawnSync } from 'node:child_process';
import { RUN_COMPILED_ENV } from '../test/helpers/processes.ts';

/**
 * The command line's `--name=value` flags (a value may hold '=', e.g. Node
 * options) and bare `--name` flags (value "true"), by name.
 */
export function benchArgs(argv: readonly string[] = process.argv.slice(2)): Map<string, string> {
  return new Map(
    argv.map((arg) => {
      const flag = arg.replace(/^--/, '');
      const eq = flag.indexOf('=');
      return eq === -1 ? [flag, 'true'] : [flag.slice(0, eq), flag.slice(eq + 1)];
    }),
  );
}

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

/**
 * Builds dist/ (`npm run build`, as `npm start` and the image do) and has the
 * project's processes started from here on run it instead of the sources
 * through tsx: production runs compiled JavaScript, and tsx's loader changes
 * both the idle memory and what each session adds to it.
 */
export function useCompiledBuild(): void {
  build('.');
  process.env[RUN_COMPILED_ENV] = '1';
}

/** `npm run build` in a checkout (this one, or another compared with it). */
export function build(checkout: string): void {
  const result = spawnSync('npm', ['run', '--silent', 'build'], { cwd: checkout, stdio: ['ignore', 'ignore', 'inherit'] });
  if (result.status !== 0) throw new Error(`npm run build failed in ${checkout}: the benchmark runs the compiled JavaScript`);
}
