// Checks real answers against the response schemas of an OpenAPI 3.1
// document, with Ajv's JSON Schema 2020-12 dialect (the one OpenAPI 3.1 uses).
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';

const DOC_ID = 'https://cccp.test/openapi.json';

export class ResponseChecker {
  private readonly ajv = new Ajv2020({ strict: false, allErrors: true });
  private readonly paths: Record<string, { get?: { responses?: Record<string, unknown> } }>;

  constructor(document: Record<string, unknown>) {
    this.ajv.addSchema({ ...document, $id: DOC_ID });
    this.paths = document.paths as typeof this.paths;
  }

  /** Undefined when the answer matches what the document says for that path and status, else why not. */
  problem(path: string, status: number, body: unknown, contentType = 'application/json'): string | undefined {
    const responses = this.paths[path]?.get?.responses;
    if (!responses) return `the document has no GET ${path}`;
    if (!(String(status) in responses)) return `the document lists no ${status} for ${path}`;
    const pointer = `#/paths/${path.replace(/~/g, '~0').replace(/\//g, '~1')}/get/responses/${status}/content/${contentType.replace(/\//g, '~1')}/schema`;
    let validate: ValidateFunction;
    try {
      validate = this.ajv.compile({ $ref: DOC_ID + pointer });
    } catch (error) {
      return `no ${contentType} schema for ${status} on ${path}: ${(error as Error).message}`;
    }
    if (validate(body)) return undefined;
    return `${path} ${status} ${JSON.stringify(body)}: ${this.ajv.errorsText(validate.errors)}`;
  }
}
