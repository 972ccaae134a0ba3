#!/usr/bin/python3
"""Parses a GoGrid response in XML or CSV (spec §5) with Python's own parsers and prints it as
JSON, so that tests compare what a client library would read with the JSON answer.

  parse_gogrid.py xml FILE   -> {"method", "status", "summary": {...}, "list": [objects]}
  parse_gogrid.py csv FILE   -> {"status", "method", "summary": {...}, "header": [...], "rows": [[...]]}

An XML object becomes a dict with "object" set to its name; an attribute holding an <object>
becomes that dict, one holding a <list> a list of dicts, anything else its text ("" when empty).
Exits non-zero (with the parser's message) when the input is not well-formed.
"""
import csv
import io
import json
import sys
import xml.etree.ElementTree as ET


def xml_object(element):
    out = {"object": element.get("name")}
    for attribute in element.findall("attribute"):
        children = list(attribute)
        if children and children[0].tag == "object":
            out[attribute.get("name")] = xml_object(children[0])
        elif children and children[0].tag == "list":
            out[attribute.get("name")] = [xml_object(o) for o in children[0].findall("object")]
        else:
            out[attribute.get("name")] = attribute.text or ""
    return out


def parse_xml(data):
    root = ET.fromstring(data)
    if root.tag != "gogrid":
        raise ValueError("root element is <%s>, not <gogrid>" % root.tag)
    responses = root.findall("response")
    if len(responses) != 1:
        raise ValueError("%d <response> elements" % len(responses))
    response = responses[0]
    summary = response.find("summary")
    return {
        "method": response.get("method"),
        "status": response.get("status"),
        "summary": {k: int(v) for k, v in summary.attrib.items()},
        "list": [xml_object(o) for o in response.find("list").findall("object")],
    }


def parse_csv(data):
    text = data.decode("utf-8")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    first = [field.strip() for field in rows[0]]
    if not first[0].startswith("# "):
        raise ValueError("first line does not start with '# '")
    summary = {first[i].lower(): int(first[i + 1]) for i in range(2, len(first) - 1, 2)}
    header = rows[1]
    if not header or not header[0].startswith("# "):
        raise ValueError("second line does not start with '# '")
    header[0] = header[0][2:]
    if header == [""]:
        header = []
    return {"status": first[0][2:].lower(), "method": first[1], "summary": summary,
            "header": header, "rows": rows[2:]}


def main():
    mode, path = sys.argv[1], sys.argv[2]
    with open(path, "rb") as f:
        data = f.read()
    try:
        result = parse_xml(data) if mode == "xml" else parse_csv(data)
    except Exception as error:  # the message is the point: what the parser refused
        print("%s: %s" % (type(error).__name__, error), file=sys.stderr)
        return 1
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
