"""Loading and translating infra/template.yaml offline, for scripts/validate-infra.sh and the tests.

cfn-lint 1.58 validates a SAM template against SAM's schemas without expanding the transform, so a
problem that only exists after the transform (a circular dependency between the HTTP API and the
functions, for one) passes both `cfn-lint` and `sam validate --lint`. `translate` expands the template
with aws-sam-translator, as CloudFormation will, so the expanded template can be linted too.

Usage: python template_tools.py translate TEMPLATE OUT.json
"""

import copy
import json
import os
import sys

from cfnlint.decode import decode
from samtranslator.translator.transform import transform

# The translator wants S3 code locations; the content is irrelevant for validation.
PLACEHOLDER_CODE_URI = "s3://placeholder-bucket/placeholder-key.zip"


def load(path):
    """The template as plain dicts and lists, short-form intrinsics (!Ref, !Sub, ...) in long form."""
    template, errors = decode(path)
    if errors or template is None:
        raise ValueError(f"{path} does not parse: {[str(e) for e in errors]}")
    # Round-trip through JSON: cfn-lint's node classes become plain dicts, lists and strings.
    return json.loads(json.dumps(template))


class _NoManagedPolicies:
    """The template names no AWS managed policies, so the translator never needs to look one up."""

    def load(self):
        return {}


def translate(template):
    """The template after the SAM transform, offline (no AWS call, no credentials)."""
    source = copy.deepcopy(template)
    for resource in source.get("Resources", {}).values():
        if resource.get("Type") == "AWS::Serverless::Function":
            resource.setdefault("Properties", {})["CodeUri"] = PLACEHOLDER_CODE_URI
    # The pseudo parameter AWS::Region comes from a boto3 session; any region will do.
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    return transform(source, {}, _NoManagedPolicies())


def main(argv):
    if len(argv) != 4 or argv[1] != "translate":
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    translated = translate(load(argv[2]))
    with open(argv[3], "w", encoding="utf-8") as out:
        json.dump(translated, out, indent=1, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
