// The Control API's optional bearer tokens (CCCP_CONTROL_TOKENS). Tokens are
// compared as SHA-256 digests with timingSafeEqual, against every configured
// token without stopping early, so timing tells nothing about which or how
// much of a token matched.
import { createHash, timingSafeEqual } from 'node:crypto';

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

export class BearerTokens {
  private digests: Buffer[];

  constructor(tokens: readonly string[]) {
    this.digests = tokens.map(digest);
  }

  /** Swaps the whole set at once (a rotation): the next request sees only the new tokens. */
  replace(tokens: readonly string[]): void {
    this.digests = tokens.map(digest);
  }

  /** No tokens configured: every request is admitted. */
  get required(): boolean {
    return this.digests.length > 0;
  }

  /** True when the Authorization header carries one of the tokens. */
  admits(authorization: string | undefined): boolean {
    if (!this.required) return true;
    const match = /^Bearer +([\x21-\x7e]+) *$/i.exec(authorization ?? '');
    const presented = digest(match?.[1] ?? '');
    let admitted = false;
    for (const expected of this.digests) admitted = timingSafeEqual(presented, expected) || admitted;
    return match !== null && admitted;
  }
}
