"""Checks infra/template.yaml against the contract (design.md) and against the code it deploys.

Run by scripts/validate-infra.sh with the validation venv's python:
    .venv-infra/bin/python -m unittest discover -s infra/tests -t infra/tests
INFRA_TEMPLATE points the tests at another template (used to try a broken copy).

Cross-checks read the Rust sources: the table's indexes from shared/src/store/schema.rs, the secret keys
and env var names from shared/src/config.rs, binary names from the function crates, metric names from
the functions' handlers. The IAM table below is kept by hand from the store/queue calls each function's
use cases make (shared/src/usecase/*.rs through shared/src/store/dynamo.rs); update it with the code.
"""

import json
import os
import re
import unittest
from pathlib import Path

import template_tools

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = Path(os.environ.get("INFRA_TEMPLATE", ROOT / "infra" / "template.yaml"))

# design.md section 2 (contract): the deployed binaries.
CONTRACT_BINARIES = {
    "oauth-callback",
    "athlete-scan",
    "sync-fanout",
    "sync-worker",
    "revoke-hook",
    "polar-webhook",
}
HTTP_FUNCTIONS = {"oauth-callback", "revoke-hook", "polar-webhook"}

# design.md section 3 (contract): every function gets these; AWS_ENDPOINT_URL is for local stacks only.
CONTRACT_ENV = {
    "CONNECTOR_TABLE",
    "SYNC_QUEUE_URL",
    "CONNECTOR_SECRET_ID",
    "PUBLIC_BASE_URL",
    "SMARTABASE_URL",
    "POLAR_AUTH_URL",
    "POLAR_TOKEN_URL",
    "POLAR_API_URL",
    "SYNC_INTERVAL_MINUTES",
    "BACKFILL_DAYS",
}
CONTRACT_POLAR_DEFAULTS = {
    "PolarAuthUrl": "https://flow.polar.com/oauth2/authorization",
    "PolarTokenUrl": "https://polarremote.com/v2/oauth2/token",
    "PolarApiUrl": "https://www.polaraccesslink.com",
}

# design.md section 4 (contract): route -> binary.
CONTRACT_ROUTES = {
    "GET /polar/authorize": "oauth-callback",
    "GET /polar/callback": "oauth-callback",
    "POST /polar/revoke": "revoke-hook",
    "POST /polar/webhook": "polar-webhook",
}

FORBIDDEN_ACTIONS = {"dynamodb:Scan", "dynamodb:DeleteTable", "secretsmanager:PutSecretValue"}


def _grants(table=(), query_indexes=(), send=False, poll=False):
    """(action, resource) pairs: every function writes its own logs and reads the secret."""
    grants = {
        ("logs:CreateLogStream", "own-log-group"),
        ("logs:PutLogEvents", "own-log-group"),
        ("secretsmanager:GetSecretValue", "secret"),
    }
    grants |= {(f"dynamodb:{action}", "table") for action in table}
    grants |= {("dynamodb:Query", f"table/index/{index}") for index in query_indexes}
    if send:
        grants.add(("sqs:SendMessage", "sync-queue"))
    if poll:
        grants |= {
            (f"sqs:{action}", "sync-queue")
            for action in ("ReceiveMessage", "DeleteMessage", "GetQueueAttributes")
        }
    return grants


# Exactly what each function's code calls. GetItem for everyone: the mapping override is read at start.
EXPECTED_GRANTS = {
    # put_state, take_state (conditional DeleteItem), put_token, update_athlete, mark/clear_queued.
    "oauth-callback": _grants(table=("GetItem", "PutItem", "UpdateItem", "DeleteItem"), send=True),
    # get_athlete, get_token, update_athlete, delete_token; never queues.
    "revoke-hook": _grants(table=("GetItem", "PutItem", "DeleteItem")),
    # claim, put_setting, athlete_for_polar_user (+ BatchGetItem on ties), update_athlete, enqueue.
    "polar-webhook": _grants(
        table=("GetItem", "PutItem", "UpdateItem", "BatchGetItem"),
        query_indexes=("polar_user",),
        send=True,
    ),
    # due_athletes (status index + BatchGetItem), load_budget (read only), mark/clear_queued, send.
    "sync-fanout": _grants(
        table=("GetItem", "UpdateItem", "BatchGetItem"), query_indexes=("status",), send=True
    ),
    # athlete, token, lock, budget, ledger (batch get/write), queued marker; requeues deferrals; polls.
    "sync-worker": _grants(
        table=("GetItem", "PutItem", "UpdateItem", "DeleteItem", "BatchGetItem", "BatchWriteItem"),
        send=True,
        poll=True,
    ),
    # settings, athletes, tokens (app flow, deregistration), list_athletes (status index + BatchGetItem).
    "athlete-scan": _grants(
        table=("GetItem", "PutItem", "UpdateItem", "DeleteItem", "BatchGetItem"),
        query_indexes=("status",),
        send=True,
    ),
}

# What each alarm watches: (namespace, metric, Function/FunctionName/QueueName dimension owner).
REQUIRED_ALARM_METRICS = {
    ("AWS/SQS", "ApproximateNumberOfMessagesVisible", "SyncDeadLetterQueue"),
    ("PolarConnector", "AthletesNeedingReauthorisation", "sync-worker"),
    ("PolarConnector", "RemovalGuarded", "athlete-scan"),
    ("PolarConnector", "FieldsDropped", "sync-worker"),
    ("PolarConnector", "WebhookDeliveries", "polar-webhook"),
    ("PolarConnector", "ScanRunsFailed", "athlete-scan"),
    ("PolarConnector", "AthletesSeen", "athlete-scan"),
    ("PolarConnector", "BudgetDeferrals", "sync-worker"),
    ("PolarConnector", "FanoutBudgetLimited", "sync-fanout"),
    ("PolarConnector", "AthletesSkipped", "sync-fanout"),
}

REQUIRED_OUTPUTS = {
    "PolarRedirectUrl",
    "RevokeHookUrl",
    "WebhookUrl",
    "AuthorizeUrl",
    "TableName",
    "QueueUrl",
    "DlqUrl",
    "SecretArn",
    "DashboardUrl",
}

TEMPLATE = template_tools.load(str(TEMPLATE_PATH))
RESOURCES = TEMPLATE["Resources"]


def resources_of(type_name, resources=RESOURCES):
    return {name: r for name, r in resources.items() if r["Type"] == type_name}


def functions_by_binary():
    """binary name -> (logical id, resource)."""
    found = {}
    for name, resource in resources_of("AWS::Serverless::Function").items():
        binary = resource.get("Metadata", {}).get("BuildProperties", {}).get("Binary")
        found[binary] = (name, resource)
    return found


def get_att_target(value, attribute="Arn"):
    """The logical id in {"Fn::GetAtt": [id, attribute]} (either form), else None."""
    if not isinstance(value, dict) or set(value) != {"Fn::GetAtt"}:
        return None
    target = value["Fn::GetAtt"]
    if isinstance(target, str):
        target = target.split(".", 1)
    return target[0] if list(target[1:]) == [attribute] else None


def ref_target(value):
    if isinstance(value, dict) and set(value) == {"Ref"}:
        return value["Ref"]
    return None


SECRET_REFERENCE = {"Fn::If": ["CreateSecret", {"Ref": "ConnectorSecret"}, {"Ref": "ExistingSecretArn"}]}


def resource_key(resource, own_log_group):
    """A short name for a policy statement's resource; anything unexpected keeps its raw form."""
    target = get_att_target(resource)
    if target == "ConnectorTable":
        return "table"
    if target == "SyncQueue":
        return "sync-queue"
    if target == "SyncDeadLetterQueue":
        return "dead-letter-queue"
    if target is not None and target == own_log_group:
        return "own-log-group"
    if resource == SECRET_REFERENCE:
        return "secret"
    if isinstance(resource, dict) and set(resource) == {"Fn::Sub"}:
        match = re.fullmatch(r"\$\{ConnectorTable\.Arn\}/index/([a-z_]+)", resource["Fn::Sub"])
        if match:
            return f"table/index/{match.group(1)}"
    return json.dumps(resource, sort_keys=True)


def statements_of(role):
    for policy in role["Properties"].get("Policies", []):
        statements = policy["PolicyDocument"]["Statement"]
        yield from statements if isinstance(statements, list) else [statements]


def as_list(value):
    return value if isinstance(value, list) else [value]


def role_of(function):
    role = get_att_target(function["Properties"].get("Role"))
    if role is None:
        raise AssertionError("function has no explicit Role: !GetAtt <Role>.Arn")
    return role


def read_source(relative):
    return (ROOT / relative).read_text(encoding="utf-8")


def camel_to_upper_snake(name):
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).upper()


def schema_from_rust():
    """The table definition `create_table` in shared/src/store/schema.rs builds."""
    text = read_source("shared/src/store/schema.rs")
    consts = dict(re.findall(r'pub const (\w+): &str = "([^"]*)";', text))
    start = text.index("pub async fn create_table")
    body = text[start : text.index(".create_table()", start)]

    projections = {}
    for m in re.finditer(
        r"let (\w+) = Projection::builder\(\)\s*\.projection_type\(ProjectionType::(\w+)\)"
        r"(?:\s*\.non_key_attributes\((\w+)\))?",
        body,
    ):
        projection = {"ProjectionType": camel_to_upper_snake(m.group(2))}
        if m.group(3):
            projection["NonKeyAttributes"] = [consts[m.group(3)]]
        projections[m.group(1)] = projection

    indexes = {}
    for m in re.finditer(r"index\(\s*(\w+),\s*vec!\[(.*?)\],\s*(\w+)(?:\.clone\(\))?,?\s*\)", body, re.S):
        keys = [
            (consts[attr], kind.upper()) for attr, kind in re.findall(r"key\((\w+), KeyType::(\w+)\)", m.group(2))
        ]
        indexes[consts[m.group(1)]] = {"keys": keys, "projection": projections[m.group(3)]}

    attributes_match = re.search(r"\[([A-Z_,\s]+)\]\s*\.into_iter\(\)\s*\.map\(string_attribute\)", body)
    table_keys = re.search(r"vec!\[key\((\w+), KeyType::Hash\)\?, key\((\w+), KeyType::Range\)\?\]", body)
    if not (projections and indexes and attributes_match and table_keys):
        raise AssertionError("shared/src/store/schema.rs changed shape: update schema_from_rust in this test")
    attributes = sorted(consts[a.strip()] for a in attributes_match.group(1).split(",") if a.strip())
    return {
        "attributes": attributes,
        "keys": [(consts[table_keys.group(1)], "HASH"), (consts[table_keys.group(2)], "RANGE")],
        "indexes": indexes,
        "ttl": consts["EXPIRES_AT"],
    }


def metric_names_emitted(binary):
    """String literals in the function's handler that look like metric names (CamelCase)."""
    return set(re.findall(r'"([A-Z][A-Za-z]+)"', read_source(f"functions/{binary}/src/lib.rs")))


def substitute_placeholders(text):
    """A !Sub string with every ${Name} written @Name@, for parsing the JSON it yields."""
    return re.sub(r"\$\{([^}]+)\}", r"@\1@", text)


class Functions(unittest.TestCase):
    def test_binary_names_equal_the_contract_and_the_crates(self):
        functions = functions_by_binary()
        self.assertEqual(set(functions), CONTRACT_BINARIES)
        for binary, (name, resource) in functions.items():
            with self.subTest(binary=binary):
                self.assertEqual(resource["Metadata"]["BuildMethod"], "rust-cargolambda")
                # The workspace root: cargo-lambda builds the named binary of a workspace member there.
                self.assertEqual(resource["Properties"]["CodeUri"], "..")
                manifest = read_source(f"functions/{binary}/Cargo.toml")
                self.assertRegex(manifest, rf'\[\[bin\]\]\s*name = "{re.escape(binary)}"')

    def test_globals_set_the_runtime_and_json_logs(self):
        function = TEMPLATE["Globals"]["Function"]
        self.assertEqual(function["Runtime"], "provided.al2023")
        self.assertEqual(function["Architectures"], ["arm64"])
        self.assertEqual(function["Handler"], "bootstrap")
        self.assertEqual(function["LoggingConfig"]["LogFormat"], "JSON")
        # EMF lines have no level and count as INFO: a higher level would drop every metric.
        self.assertEqual(function["LoggingConfig"]["ApplicationLogLevel"], "INFO")

    def test_every_contract_env_var_is_in_globals_and_no_function_overrides_them(self):
        variables = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
        self.assertEqual(set(variables), CONTRACT_ENV)
        config = read_source("shared/src/config.rs")
        for name in CONTRACT_ENV:
            self.assertIn(f'"{name}"', config, f"shared/src/config.rs does not read {name}")
        self.assertEqual(ref_target(variables["CONNECTOR_TABLE"]), "ConnectorTable")
        self.assertEqual(ref_target(variables["SYNC_QUEUE_URL"]), "SyncQueue")
        self.assertEqual(ref_target(variables["SYNC_INTERVAL_MINUTES"]), "SyncIntervalMinutes")
        self.assertEqual(ref_target(variables["SMARTABASE_URL"]), "SmartabaseUrl")
        self.assertEqual(variables["CONNECTOR_SECRET_ID"], SECRET_REFERENCE)
        self.assertIn("${HttpApi}.execute-api.", json.dumps(variables["PUBLIC_BASE_URL"]))
        for binary, (_, resource) in functions_by_binary().items():
            self.assertNotIn("Environment", resource["Properties"], f"{binary} overrides the contract environment")

    def test_polar_url_parameters_default_to_the_contract(self):
        parameters = TEMPLATE["Parameters"]
        variables = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
        for parameter, default in CONTRACT_POLAR_DEFAULTS.items():
            self.assertEqual(parameters[parameter]["Default"], default)
        self.assertEqual(ref_target(variables["POLAR_AUTH_URL"]), "PolarAuthUrl")
        self.assertEqual(ref_target(variables["POLAR_TOKEN_URL"]), "PolarTokenUrl")
        self.assertEqual(ref_target(variables["POLAR_API_URL"]), "PolarApiUrl")

    def test_timeouts_fit_their_triggers(self):
        default_timeout = TEMPLATE["Globals"]["Function"]["Timeout"]
        timeouts = {
            binary: resource["Properties"].get("Timeout", default_timeout)
            for binary, (_, resource) in functions_by_binary().items()
        }
        for binary in HTTP_FUNCTIONS:
            # API Gateway's integration timeout is 30 s.
            self.assertLessEqual(timeouts[binary], 29, binary)
        self.assertEqual(timeouts["sync-worker"], 150)
        self.assertEqual(timeouts["athlete-scan"], 900)
        self.assertEqual(timeouts["sync-fanout"], 300)

    def test_each_function_logs_to_its_own_group_with_the_retention_parameter(self):
        groups = []
        for binary, (_, resource) in functions_by_binary().items():
            group = ref_target(resource["Properties"]["LoggingConfig"]["LogGroup"])
            groups.append(group)
            properties = RESOURCES[group]["Properties"]
            self.assertEqual(ref_target(properties["RetentionInDays"]), "LogRetentionDays", binary)
            self.assertTrue(properties["LogGroupName"]["Fn::Sub"].endswith(binary), binary)
        self.assertEqual(len(set(groups)), len(CONTRACT_BINARIES))


class Iam(unittest.TestCase):
    def test_each_function_has_its_own_role_without_managed_policies(self):
        roles = []
        for binary, (_, resource) in functions_by_binary().items():
            self.assertNotIn("Policies", resource["Properties"], f"{binary}: use its role, not SAM policies")
            role = role_of(resource)
            roles.append(role)
            self.assertNotIn("ManagedPolicyArns", RESOURCES[role]["Properties"], binary)
        self.assertEqual(len(set(roles)), len(CONTRACT_BINARIES), "functions share a role")

    def test_no_wildcards_and_only_allow_statements(self):
        for binary, (_, resource) in functions_by_binary().items():
            for statement in statements_of(RESOURCES[role_of(resource)]):
                with self.subTest(binary=binary, sid=statement.get("Sid")):
                    self.assertEqual(statement["Effect"], "Allow")
                    self.assertFalse({"NotAction", "NotResource"} & set(statement))
                    for action in as_list(statement["Action"]):
                        self.assertNotIn("*", action)
                    for target in as_list(statement["Resource"]):
                        # No literal "*" resource: AWS requires none for these calls.
                        self.assertFalse(isinstance(target, str) and "*" in target, target)
                        self.assertNotIn('"*"', json.dumps(target))

    def test_each_function_is_granted_exactly_what_its_code_calls(self):
        for binary, (_, resource) in functions_by_binary().items():
            own_log_group = ref_target(resource["Properties"]["LoggingConfig"]["LogGroup"])
            granted = set()
            for statement in statements_of(RESOURCES[role_of(resource)]):
                for action in as_list(statement["Action"]):
                    for target in as_list(statement["Resource"]):
                        granted.add((action, resource_key(target, own_log_group)))
            with self.subTest(binary=binary):
                expected = EXPECTED_GRANTS[binary]
                self.assertEqual(
                    granted,
                    expected,
                    f"\n  granted, not expected: {sorted(granted - expected)}"
                    f"\n  expected, not granted: {sorted(expected - granted)}",
                )
                self.assertFalse({action for action, _ in granted} & FORBIDDEN_ACTIONS)

    def test_index_grants_name_existing_indexes(self):
        indexes = {i["IndexName"] for i in RESOURCES["ConnectorTable"]["Properties"]["GlobalSecondaryIndexes"]}
        for binary, grants in EXPECTED_GRANTS.items():
            for _, target in grants:
                if target.startswith("table/index/"):
                    self.assertIn(target.removeprefix("table/index/"), indexes, binary)

    def test_expanded_template_adds_no_policies(self):
        # SAM adds managed policies (on "*") to roles it generates; explicit roles must stay as written.
        translated = template_tools.translate(TEMPLATE)["Resources"]
        lambda_functions = resources_of("AWS::Lambda::Function", translated)
        self.assertEqual(len(lambda_functions), len(CONTRACT_BINARIES))
        for name, function in lambda_functions.items():
            role = get_att_target(function["Properties"]["Role"])
            self.assertIn(role, RESOURCES, f"{name} runs with a role SAM generated")
            self.assertNotIn("ManagedPolicyArns", translated[role]["Properties"], name)
        self.assertEqual(set(resources_of("AWS::IAM::Role", translated)), set(resources_of("AWS::IAM::Role")))


class Queues(unittest.TestCase):
    def test_worker_event_source_reports_batch_item_failures(self):
        _, worker = functions_by_binary()["sync-worker"]
        events = [e for e in worker["Properties"]["Events"].values() if e["Type"] == "SQS"]
        self.assertEqual(len(events), 1)
        properties = events[0]["Properties"]
        self.assertEqual(get_att_target(properties["Queue"]), "SyncQueue")
        self.assertIn("ReportBatchItemFailures", properties["FunctionResponseTypes"])
        self.assertEqual(properties["BatchSize"], 10)
        self.assertEqual(ref_target(properties["ScalingConfig"]["MaximumConcurrency"]), "WorkerMaxConcurrency")

    def test_visibility_timeout_is_at_least_six_worker_timeouts(self):
        _, worker = functions_by_binary()["sync-worker"]
        timeout = worker["Properties"].get("Timeout", TEMPLATE["Globals"]["Function"]["Timeout"])
        visibility = RESOURCES["SyncQueue"]["Properties"]["VisibilityTimeout"]
        self.assertGreaterEqual(visibility, 6 * timeout)

    def test_the_worker_stops_starting_work_in_time_for_its_longest_call(self):
        # The worker starts no call in its last DEADLINE_MARGIN_SECONDS and hands unfinished jobs back;
        # a Smartabase call started just before must end inside that margin, and the rest of the timeout
        # must leave time to work.
        _, worker = functions_by_binary()["sync-worker"]
        timeout = worker["Properties"].get("Timeout", TEMPLATE["Globals"]["Function"]["Timeout"])
        margin = int(re.search(r"DEADLINE_MARGIN_SECONDS: u64 = (\d+);",
                               read_source("functions/sync-worker/src/lib.rs")).group(1))
        smartabase_timeout = int(re.search(r"REQUEST_TIMEOUT: Duration = Duration::from_secs\((\d+)\);",
                                           read_source("shared/src/smartabase/client.rs")).group(1))
        self.assertGreater(margin, smartabase_timeout)
        self.assertGreaterEqual(timeout - margin, 60)

    def test_sync_queue_redrives_to_the_dead_letter_queue(self):
        queue = RESOURCES["SyncQueue"]["Properties"]
        redrive = queue["RedrivePolicy"]
        self.assertEqual(get_att_target(redrive["deadLetterTargetArn"]), "SyncDeadLetterQueue")
        self.assertEqual(int(redrive["maxReceiveCount"]), 5)
        dead_letters = RESOURCES["SyncDeadLetterQueue"]["Properties"]
        self.assertEqual(dead_letters["MessageRetentionPeriod"], 14 * 24 * 3600)
        # A message's age counts from its first enqueue: the DLQ must keep it longer than the queue did.
        self.assertGreater(dead_letters["MessageRetentionPeriod"], queue.get("MessageRetentionPeriod", 345600))
        for properties in (queue, dead_letters):
            self.assertTrue(properties["SqsManagedSseEnabled"])


class HttpApi(unittest.TestCase):
    def test_routes_map_to_the_contract_functions(self):
        binary_of_function = {name: binary for binary, (name, _) in functions_by_binary().items()}
        routes = {}
        for route in resources_of("AWS::ApiGatewayV2::Route").values():
            properties = route["Properties"]
            self.assertEqual(ref_target(properties["ApiId"]), "HttpApi")
            integration_id = re.fullmatch(r"integrations/\$\{(\w+)\}", properties["Target"]["Fn::Sub"]).group(1)
            integration = RESOURCES[integration_id]["Properties"]
            self.assertEqual(integration["IntegrationType"], "AWS_PROXY")
            self.assertEqual(integration["PayloadFormatVersion"], "2.0")
            routes[properties["RouteKey"]] = binary_of_function[get_att_target(integration["IntegrationUri"])]
        self.assertEqual(routes, CONTRACT_ROUTES)

    def test_api_gateway_may_invoke_each_function_only_on_its_routes(self):
        binary_of_function = {name: binary for binary, (name, _) in functions_by_binary().items()}
        permitted = set()
        for permission in resources_of("AWS::Lambda::Permission").values():
            properties = permission["Properties"]
            self.assertEqual(properties["Principal"], "apigateway.amazonaws.com")
            method, path = re.search(r"\$\{HttpApi\}/\*/(GET|POST)(/\S+)$", properties["SourceArn"]["Fn::Sub"]).groups()
            permitted.add((f"{method} {path}", binary_of_function[ref_target(properties["FunctionName"])]))
        self.assertEqual(permitted, set(CONTRACT_ROUTES.items()))

    def test_no_function_declares_http_events(self):
        # SAM would inline the integrations into the API: the API and PUBLIC_BASE_URL would form a cycle.
        for binary, (_, resource) in functions_by_binary().items():
            for event in resource["Properties"].get("Events", {}).values():
                self.assertNotIn(event["Type"], {"HttpApi", "Api"}, binary)


class Schedules(unittest.TestCase):
    def schedule_of(self, binary):
        _, function = functions_by_binary()[binary]
        events = [e for e in function["Properties"]["Events"].values() if e["Type"] == "Schedule"]
        self.assertEqual(len(events), 1, binary)
        return events[0]["Properties"]["Schedule"]

    def test_scan_runs_every_two_hours(self):
        self.assertEqual(self.schedule_of("athlete-scan"), "rate(2 hours)")

    def test_fanout_runs_every_sync_interval(self):
        self.assertEqual(self.schedule_of("sync-fanout"), {"Fn::Sub": "rate(${SyncIntervalMinutes} minutes)"})
        parameter = TEMPLATE["Parameters"]["SyncIntervalMinutes"]
        # rate(1 minute) is the only singular form; the minimum of 15 keeps "minutes" valid.
        self.assertEqual((parameter["MinValue"], parameter["MaxValue"], parameter["Default"]), (15, 1440, 60))


class Table(unittest.TestCase):
    def test_table_mirrors_schema_rs(self):
        schema = schema_from_rust()
        table = RESOURCES["ConnectorTable"]["Properties"]
        self.assertEqual(sorted(a["AttributeName"] for a in table["AttributeDefinitions"]), schema["attributes"])
        self.assertTrue(all(a["AttributeType"] == "S" for a in table["AttributeDefinitions"]))
        self.assertEqual([(k["AttributeName"], k["KeyType"]) for k in table["KeySchema"]], schema["keys"])
        indexes = {
            index["IndexName"]: {
                "keys": [(k["AttributeName"], k["KeyType"]) for k in index["KeySchema"]],
                "projection": index["Projection"],
            }
            for index in table["GlobalSecondaryIndexes"]
        }
        self.assertEqual(indexes, schema["indexes"])
        self.assertEqual(table["TimeToLiveSpecification"], {"AttributeName": schema["ttl"], "Enabled": True})

    def test_table_is_on_demand_recoverable_encrypted_and_retained(self):
        table = RESOURCES["ConnectorTable"]
        properties = table["Properties"]
        self.assertEqual(properties["BillingMode"], "PAY_PER_REQUEST")
        self.assertTrue(properties["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"])
        self.assertTrue(properties["SSESpecification"]["SSEEnabled"])
        self.assertEqual(table["DeletionPolicy"], "Retain")
        self.assertEqual(table["UpdateReplacePolicy"], "Retain")


class Secret(unittest.TestCase):
    def test_secret_skeleton_lists_exactly_the_keys_the_code_reads(self):
        config = read_source("shared/src/config.rs")
        required = re.search(r"REQUIRED_KEYS: \[&str; \d+\] = \[(.*?)\];", config, re.S).group(1)
        expected = set(re.findall(r'"(\w+)"', required))
        expected.add(re.search(r'WEBHOOK_SECRET_KEY: &str = "(\w+)"', config).group(1))
        secret = RESOURCES["ConnectorSecret"]
        skeleton = json.loads(secret["Properties"]["SecretString"])
        self.assertEqual(set(skeleton), expected)
        # A skeleton, never a value: the operator fills it after deploy.
        self.assertEqual(set(skeleton.values()), {""})
        self.assertEqual(secret["Condition"], "CreateSecret")
        self.assertEqual(secret["DeletionPolicy"], "Retain")


class Alarms(unittest.TestCase):
    def alarms(self):
        return resources_of("AWS::CloudWatch::Alarm")

    @staticmethod
    def watched(alarm):
        """(namespace, metric, dimension value) of every metric an alarm reads."""
        properties = alarm["Properties"]
        metrics = [properties] if "MetricName" in properties else [
            m["MetricStat"]["Metric"] for m in properties["Metrics"] if "MetricStat" in m
        ]
        for metric in metrics:
            (dimension,) = metric["Dimensions"]
            value = dimension["Value"]
            owner = ref_target(value) or get_att_target(value, "QueueName") or value
            yield metric["Namespace"], metric["MetricName"], owner

    def test_required_alarms_exist(self):
        watched = {w for alarm in self.alarms().values() for w in self.watched(alarm)}
        self.assertLessEqual(REQUIRED_ALARM_METRICS, watched)
        functions = {name for name, _ in functions_by_binary().values()}
        errors = {owner for ns, metric, owner in watched if (ns, metric) == ("AWS/Lambda", "Errors")}
        throttles = {owner for ns, metric, owner in watched if (ns, metric) == ("AWS/Lambda", "Throttles")}
        self.assertEqual(errors, functions)
        self.assertEqual(throttles, functions)

    def test_alarm_metrics_are_ones_the_code_emits(self):
        for name, alarm in self.alarms().items():
            for namespace, metric, owner in self.watched(alarm):
                if namespace == "PolarConnector":
                    self.assertIn(metric, metric_names_emitted(owner), f"{name}: {owner} never emits {metric}")

    def test_every_alarm_explains_itself_and_notifies_the_topic_when_there_is_one(self):
        for name, alarm in self.alarms().items():
            with self.subTest(alarm=name):
                properties = alarm["Properties"]
                self.assertIn("Runbook: README, Alarms.", properties["AlarmDescription"])
                self.assertIn("First:", properties["AlarmDescription"])
                expected_actions = {"Fn::If": ["HasAlarmEmail", [{"Ref": "AlarmTopic"}], {"Ref": "AWS::NoValue"}]}
                self.assertEqual(properties["AlarmActions"], expected_actions)

    def test_webhook_silence_alarm_only_when_webhooks_are_enabled_and_silence_breaches(self):
        (alarm,) = [a for a in self.alarms().values() if any(w[1] == "WebhookDeliveries" for w in self.watched(a))]
        self.assertEqual(alarm["Condition"], "WatchWebhooks")
        self.assertEqual(TEMPLATE["Conditions"]["WatchWebhooks"], {"Fn::Equals": [{"Ref": "WebhooksEnabled"}, "true"]})
        self.assertEqual(alarm["Properties"]["TreatMissingData"], "breaching")
        self.assertEqual(alarm["Properties"]["Period"], 86400)

    def test_topic_exists_only_with_an_email(self):
        topic = RESOURCES["AlarmTopic"]
        self.assertEqual(topic["Condition"], "HasAlarmEmail")
        self.assertEqual(TEMPLATE["Parameters"]["AlarmEmail"]["Default"], "")


class Dashboard(unittest.TestCase):
    def test_dashboard_body_is_json_with_the_operators_widgets(self):
        body = RESOURCES["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
        widgets = json.loads(substitute_placeholders(body))["widgets"]
        metrics = [m for w in widgets if w["type"] == "metric" for m in w["properties"]["metrics"]]
        names = {m[1] for m in metrics}
        for required in (
            "TrainingRecordsWritten",
            "ActivityRecordsWritten",
            "SleepRecordsWritten",
            "RechargeRecordsWritten",
            "CardioLoadRecordsWritten",
            "AlertnessRecordsWritten",
            "DailyHeartRateRecordsWritten",
            "PolarCalls",
            "BudgetDeferrals",
            "SmartabaseCalls",
            "JobsFailed",
            "FieldsDropped",
            "WebhookDeliveries",
            "AthletesSeen",
            "ApproximateNumberOfMessagesVisible",
        ):
            self.assertIn(required, names)
        lag_stats = {m[-1]["stat"] for m in metrics if m[1] == "SyncLagSeconds"}
        self.assertEqual(lag_stats, {"p50", "p95", "Maximum"})
        queues = {m[3] for m in metrics if m[1] == "ApproximateNumberOfMessagesVisible"}
        self.assertEqual(queues, {"@SyncQueue.QueueName@", "@SyncDeadLetterQueue.QueueName@"})

    def test_dashboard_metrics_are_ones_the_code_emits(self):
        body = RESOURCES["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
        widgets = json.loads(substitute_placeholders(body))["widgets"]
        for widget in widgets:
            for metric in widget.get("properties", {}).get("metrics", []):
                if metric[0] == "PolarConnector":
                    self.assertEqual(metric[2], "Function")
                    self.assertIn(metric[1], metric_names_emitted(metric[3]), f"{metric[3]} never emits {metric[1]}")


class ParametersAndOutputs(unittest.TestCase):
    def test_site_parameters(self):
        parameters = TEMPLATE["Parameters"]
        self.assertNotIn("Default", parameters["SmartabaseUrl"])
        self.assertEqual(parameters["WebhooksEnabled"]["AllowedValues"], ["false", "true"])
        self.assertEqual(parameters["WebhooksEnabled"]["Default"], "false")
        self.assertEqual(parameters["SecretName"]["Default"], "polar-connector/secrets")
        self.assertEqual(parameters["LogRetentionDays"]["Default"], 30)
        self.assertEqual(parameters["WorkerMaxConcurrency"]["Default"], 10)

    def test_public_base_url_pattern_refuses_what_the_functions_refuse_at_start(self):
        pattern = re.compile(TEMPLATE["Parameters"]["PublicBaseUrl"]["AllowedPattern"])
        for good in ("", "https://connector.club.org", "https://api.club.org/polar-connector"):
            self.assertTrue(pattern.fullmatch(good), good)
        for bad in (
            "http://connector.club.org",
            "https://connector.club.org/",
            "https://connector.club.org/x?stage=1",
            "https://connector.club.org/x#top",
            "https://connector.club.org/a;b",
            "https://connector.club.org/a b",
        ):
            self.assertFalse(pattern.fullmatch(bad), bad)

    def test_outputs_give_the_urls_to_register(self):
        outputs = TEMPLATE["Outputs"]
        self.assertLessEqual(REQUIRED_OUTPUTS, set(outputs))
        for output, path in (
            ("PolarRedirectUrl", "/polar/callback"),
            ("AuthorizeUrl", "/polar/authorize"),
            ("RevokeHookUrl", "/polar/revoke"),
            ("WebhookUrl", "/polar/webhook"),
        ):
            base, suffix = outputs[output]["Value"]["Fn::Join"][1]
            self.assertEqual(suffix, path)
            # The same base URL the functions get as PUBLIC_BASE_URL, so the redirect URI matches exactly.
            self.assertEqual(base, TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]["PUBLIC_BASE_URL"])


if __name__ == "__main__":
    unittest.main()
