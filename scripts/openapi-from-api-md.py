#!/usr/bin/python3
"""Writes docs/openapi.yaml from docs/api.md's method sections (path, version, roles, the
parameter table and the first paragraph), so the two references say the same thing.

Usage: scripts/openapi-from-api-md.py > docs/openapi.yaml
tests/unit/api/api_service_test.cc checks the result against the route table and api.md.
"""
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TYPES = {"int": "integer", "integer": "integer", "bool": "boolean", "boolean": "boolean",
         "float": "number", "number": "number"}


def q(text):
    return json.dumps(text, ensure_ascii=False)  # a JSON string is a valid YAML scalar


def sections(text):
    in_methods = False
    current = None
    for line in text.splitlines():
        if line.startswith("# "):
            in_methods = line == "# Methods"
        if not in_methods:
            continue
        if line.startswith("## "):
            if current:
                yield current
            current = {"method": line[3:].strip(), "lines": []}
        elif current:
            current["lines"].append(line)
    if current:
        yield current


def parse(section):
    lines = section["lines"]
    head = next(l for l in lines if l.startswith("`/api/") and " · since " in l)
    path = head[1:head.index("`", 1)]
    since = re.search(r" · since ([0-9.]+)", head).group(1)
    roles = head.split(" · roles: ", 1)[1].strip()
    body = "\n".join(lines)
    aliases = sorted({p for p in re.findall(r"`(/api/[a-z/]+)`", body) if p != path})
    summary = []
    started = False
    for line in lines[lines.index(head) + 1:]:
        if not line.strip():
            if started:
                break
            continue
        if line.startswith("|") or line.startswith("```"):
            break
        started = True
        summary.append(line.strip())
    params = []
    for line in lines:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 5 or not cells[0].startswith("`") or not line.startswith("|"):
            continue
        names = re.findall(r"`([^`]+)`", cells[0])
        for name in names:
            params.append({"name": name, "type": cells[1], "required": cells[2] == "yes",
                           "since": cells[3], "notes": "|".join(cells[4:])})
    return path, aliases, since, roles, " ".join(summary), params


def main():
    text = (ROOT / "docs" / "api.md").read_text()
    out = []
    w = out.append
    w("# gridd's GoGrid API as OpenAPI 3.1. Generated from docs/api.md by")
    w("# scripts/openapi-from-api-md.py; tests/unit/api/api_service_test.cc checks that every")
    w("# routed path is described here and nothing else, with api.md's parameters.")
    w("openapi: 3.1.0")
    w("info:")
    w("  title: gridd GoGrid API")
    w("  version: \"1.9\"")
    w("  description: " + q(
        "The GoGrid REST API as gridd serves it. Every method accepts GET with a query string "
        "and POST with a form body carrying the same parameters; every call is signed with "
        "api_key and sig (md5 of api key, shared secret and the unix time) and names the API "
        "version in v. See docs/api.md for examples and errors."))
    w("servers:")
    w("  - url: http://127.0.0.1:8080")
    w("security:")
    w("  - apiKey: []")
    w("    signature: []")
    w("paths:")
    for section in sections(text):
        path, aliases, since, roles, summary, params = parse(section)
        for routed in [path] + aliases:
            w("  %s:" % routed)
            for verb in ("get", "post"):
                w("    %s:" % verb)
                w("      operationId: %s" % q(section["method"] + ("" if verb == "get" else ".post")
                                          + ("" if routed == path else ".alias." + routed.replace("/", "_"))))
                w("      summary: " + q(summary or section["method"]))
                w("      x-gridd-method: " + q(section["method"]))
                w("      x-gridd-since: " + q(since))
                w("      x-gridd-roles: " + q(roles))
                w("      parameters:")
                for common in ("api_key", "sig", "v", "format"):
                    w("        - $ref: '#/components/parameters/%s'" % common.replace("_", ""))
                for p in params:
                    if p["name"] in ("api_key", "sig", "v", "format"):
                        continue
                    w("        - name: " + q(p["name"]))
                    w("          in: query")  # POST sends the same names in its form body
                    w("          required: " + ("true" if p["required"] else "false"))
                    w("          description: " + q(p["notes"] + " (since " + p["since"] + ")"))
                    w("          schema:")
                    w("            type: " + TYPES.get(p["type"], "string"))
                w("      responses:")
                w("        '200': {$ref: '#/components/responses/Success'}")
                w("        '400': {$ref: '#/components/responses/IllegalArgument'}")
                w("        '401': {$ref: '#/components/responses/Unauthorized'}")
                w("        '403': {$ref: '#/components/responses/AuthenticationFailed'}")
                w("        '500': {$ref: '#/components/responses/Unexpected'}")
    w(COMPONENTS)
    sys.stdout.write("\n".join(out) + "\n")


COMPONENTS = """components:
  securitySchemes:
    apiKey: {type: apiKey, in: query, name: api_key, description: "The API key gridctl apikey create issued."}
    signature: {type: apiKey, in: query, name: sig, description: "lowercase hex md5(api_key + shared_secret + unix time in seconds)."}
  parameters:
    apikey: {name: api_key, in: query, required: true, schema: {type: string}, description: "The API key."}
    sig: {name: sig, in: query, required: true, schema: {type: string}, description: "The request signature."}
    v: {name: v, in: query, required: true, schema: {type: string}, description: "API version, 1.0 to 1.9."}
    format: {name: format, in: query, required: false, schema: {type: string, enum: [json, xml, csv]}, description: "Response format; json by default."}
  schemas:
    Envelope:
      type: object
      required: [list, method, status, summary]
      properties:
        list: {type: array, items: {type: object}}
        method: {type: string}
        status: {type: string, enum: [success, failure]}
        summary:
          type: object
          properties:
            numpages: {type: integer}
            returned: {type: integer}
            start: {type: integer}
            total: {type: integer}
    Error:
      type: object
      properties:
        list:
          type: array
          items:
            type: object
            properties:
              object: {type: string, const: error}
              errorcode: {type: string}
              message: {type: string}
        method: {type: string}
        status: {type: string, const: failure}
  responses:
    Success:
      description: The call succeeded; list holds the objects.
      content: {application/json: {schema: {$ref: '#/components/schemas/Envelope'}}}
    IllegalArgument:
      description: A bad parameter (IllegalArgumentException naming it); nothing changed.
      content: {application/json: {schema: {$ref: '#/components/schemas/Error'}}}
    Unauthorized:
      description: The key's role may not call this method.
      content: {application/json: {schema: {$ref: '#/components/schemas/Error'}}}
    AuthenticationFailed:
      description: Unknown or revoked key, or a signature outside the accepted window.
      content: {application/json: {schema: {$ref: '#/components/schemas/Error'}}}
    Unexpected:
      description: An unexpected server error.
      content: {application/json: {schema: {$ref: '#/components/schemas/Error'}}}"""

if __name__ == "__main__":
    main()
