"""Runs the real AWS SAM transform (aws-sam-translator, pinned in scripts/setup) offline and
prints the resulting CloudFormation template as JSON, so the contract tests can check what
would actually be deployed (the generated roles, permissions, event sources).

Usage: python sam_transform.py TEMPLATE   (exit 2 with the SAM errors on an invalid template)

Local CodeUri values (what `sam build` packages) are replaced by a placeholder S3 URI, as
`sam package` would; the managed-policy loader answers nothing, since the template uses no
managed policy by name. The region is us-east-1 unless AWS_REGION says otherwise.
"""

import json
import os
import sys

from cfnlint.decode import decode
from samtranslator.model.exceptions import InvalidDocumentException
from samtranslator.translator.transform import transform


class NoManagedPolicies:
    def load(self):
        return {}


def main(path):
    os.environ.setdefault("AWS_DEFAULT_REGION", os.environ.get("AWS_REGION", "us-east-1"))
    template, matches = decode(path)
    if matches:
        print("\n".join(str(m) for m in matches), file=sys.stderr)
        return 2
    for resource in template.get("Resources", {}).values():
        if resource.get("Type") == "AWS::Serverless::Function":
            resource.setdefault("Properties", {})["CodeUri"] = "s3://placeholder/code.zip"
    globals_fn = template.get("Globals", {}).get("Function", {})
    globals_fn.pop("CodeUri", None)
    try:
        out = transform(template, {}, NoManagedPolicies())
    except InvalidDocumentException as e:
        for cause in e.causes:
            print(cause.message, file=sys.stderr)
        return 2
    json.dump(out, sys.stdout, indent=1, sort_keys=True, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
