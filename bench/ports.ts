// Session ports for thousands of sessions: `size` consecutive free ports.
// The test helper tries random windows above 20,000; on a machine where other
// runs hold ports there, the whole range below Linux's ephemeral ports is
// scanned in order for the first free run.
import { canBind, freePortRange, type PortRange } from '../test/helpers/net.ts';

const LOWEST = 10_000;
const BELOW_EPHEMERAL = 32_767;

export async function sessionPortRange(size: number): Promise<PortRange> {
  try {
    return await freePortRange(size);
  } catch {}
  let start = LOWEST;
  for (let port = LOWEST; port <= BELOW_EPHEMERAL; port++) {
    if (!(await canBind(port))) start = port + 1;
    else if (port - start + 1 === size) return { min: start, max: port };
  }
  throw new Error(`no ${size} consecutive free ports between ${LOWEST} and ${BELOW_EPHEMERAL}`);
}
