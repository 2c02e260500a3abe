package terraform_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"imgpipe/deploy/internal/iam"
)

// The policy-vs-calls table. What each binary's code calls is derived (deploy/internal/iam);
// the tables below are hand-kept and say on which resource each permission is granted. The
// tests fail when the code calls something the table does not grant, when the table grants
// something the code never calls, and when the Terraform grants more or less than the table.

// AWS resources as the policies name them.
const (
	objects    = `"${aws_s3_bucket.drop.arn}/${var.drop_prefix}*"`
	thumbnails = `"${aws_s3_bucket.drop.arn}/${var.thumbnail_prefix}*"`
	bucket     = "aws_s3_bucket.drop.arn"
	queue      = "aws_sqs_queue.queue.arn"
	dlq        = "aws_sqs_queue.dlq.arn"
)

var awsGrants = map[string]map[string][]string{
	"analyzer": {
		objects:    {"s3:GetObject", "s3:GetObjectVersion"},
		thumbnails: {"s3:DeleteObject", "s3:PutObject"},
		bucket:     {"s3:ListBucket"},
		queue:      {"sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"},
		dlq:        {"sqs:GetQueueAttributes", "sqs:SendMessage"},
	},
	"indexer": {},
	"uploader": {
		objects: {"s3:AbortMultipartUpload", "s3:DeleteObject", "s3:DeleteObjectVersion", "s3:GetObject", "s3:GetObjectVersion", "s3:PutObject"},
		bucket:  {"s3:ListBucket"},
		dlq:     {"sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"},
	},
	"dlq-replay": {
		dlq: {"sqs:CancelMessageMoveTask", "sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:GetQueueAttributes",
			"sqs:ListDeadLetterSourceQueues", "sqs:ListMessageMoveTasks", "sqs:ReceiveMessage", "sqs:StartMessageMoveTask"},
		queue: {"sqs:GetQueueAttributes", "sqs:GetQueueUrl", "sqs:SendMessage"},
	},
	"console": {
		objects:    {"s3:GetObject", "s3:GetObjectVersion", "s3:PutObject"},
		thumbnails: {"s3:GetObject"},
		bucket:     {"s3:ListBucket"},
		queue:      {"sqs:GetQueueAttributes"},
		dlq:        {"sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"},
	},
	// KEDA's operator, for the analyzer's ScaledObject (its calls: iam.KEDA).
	"keda": {
		queue: {"sqs:GetQueueAttributes"},
	},
}

// Google Cloud resources as the bindings name them.
const (
	topic           = "google_pubsub_topic.analyses"
	deadLetterTopic = "google_pubsub_topic.dead_letter"
	subscription    = "google_pubsub_subscription.indexer"
	deadLetterSub   = "google_pubsub_subscription.dead_letter"
	database        = "firestore database"
)

var gcpGrants = map[string]map[string][]string{
	"analyzer": {topic: {"pubsub.topics.publish"}},
	"indexer": {
		subscription:    {"pubsub.subscriptions.consume", "pubsub.subscriptions.get"},
		deadLetterTopic: {"pubsub.topics.publish"},
		database: {"datastore.databases.get", "datastore.entities.create", "datastore.entities.delete",
			"datastore.entities.get", "datastore.entities.list", "datastore.entities.update"},
	},
	"uploader": {database: {"datastore.entities.get"}},
	"dlq-replay": {
		deadLetterSub: {"pubsub.subscriptions.consume"},
		topic:         {"pubsub.topics.publish"},
	},
	"console": {
		database:      {"datastore.entities.get", "datastore.entities.list"},
		deadLetterSub: {"pubsub.subscriptions.consume"},
	},
}

// Calls the code makes that are deliberately not granted, and why.
var notGranted = map[string]map[string]string{
	"analyzer": {
		"s3:DeleteObjectVersion": "the analyzer removes thumbnails by key (a delete marker in a versioned bucket), never a version",
	},
	"dlq-replay": {
		"sqs:ListQueues": "only a fallback when sqs:ListDeadLetterSourceQueues is denied; that one is granted",
	},
	"console": {
		"s3:GetBucketCORS": "only with --bucket-cors, for local stacks; here the bucket's CORS rule is aws_s3_bucket_cors_configuration.drop",
		"s3:PutBucketCORS": "only with --bucket-cors, for local stacks; here the bucket's CORS rule is aws_s3_bucket_cors_configuration.drop",
	},
}

var (
	deriveOnce sync.Once
	derived    map[string]map[iam.Op]bool
	deriveErr  error
)

// calls derives the operations each binary's code reaches, once per test binary, and adds
// KEDA's (recorded from KEDA's scaler by deploy/k8s's tests).
func calls(t *testing.T) map[string]map[iam.Op]bool {
	t.Helper()
	deriveOnce.Do(func() {
		derived, deriveErr = iam.Derive("../..")
		if deriveErr == nil {
			derived["keda"] = iam.KEDA
		}
	})
	if deriveErr != nil {
		t.Fatal(deriveErr)
	}
	return derived
}

func union(grants map[string][]string, extra map[string]string) map[string]bool {
	out := map[string]bool{}
	for _, acts := range grants {
		for _, a := range acts {
			out[a] = true
		}
	}
	for a := range extra {
		out[a] = true
	}
	return out
}

// The table grants exactly what the code calls.
func TestTableMatchesCode(t *testing.T) {
	got := calls(t)
	if len(got) != len(iam.Binaries)+1 {
		t.Fatalf("derived %d identities, want %d binaries and KEDA", len(got), len(iam.Binaries))
	}
	for bin, ops := range got {
		if len(ops) == 0 {
			t.Errorf("%s: no cloud call found; the derivation is broken", bin)
		}
		aws, gcp, unmapped := iam.Permissions(ops)
		if len(unmapped) > 0 {
			t.Errorf("%s calls %v, which deploy/internal/iam.Actions does not map to IAM actions", bin, unmapped)
		}
		if d := iam.Diff(aws, union(awsGrants[bin], notGranted[bin])); d != "" {
			t.Errorf("%s: the code needs these AWS actions, the table grants otherwise: %s\n(calls: %v)", bin, d, iam.Sorted(ops))
		}
		if d := iam.Diff(gcp, union(gcpGrants[bin], nil)); d != "" {
			t.Errorf("%s: the code needs these Google Cloud permissions, the table grants otherwise: %s\n(calls: %v)", bin, d, iam.Sorted(ops))
		}
	}
}

// awsPolicies reads, for each binary, what its role's inline policy grants per resource.
func awsPolicies(t *testing.T, m *module) map[string]map[string]map[string]bool {
	t.Helper()
	if n := len(m.all("resource", "aws_iam_role_policy_attachment")) + len(m.all("resource", "aws_iam_policy")) + len(m.all("resource", "aws_iam_role_policies_exclusive")); n != 0 {
		t.Errorf("%d managed policies or attachments: the roles' grants must all be in their inline policies", n)
	}
	// The binaries' policies are one document and one inline policy each over
	// local.aws_statements; KEDA's role has its own.
	for _, rp := range m.all("resource", "aws_iam_role_policy") {
		want := map[string]string{"for_each": "local.aws_statements", "name": "each.key",
			"role": "aws_iam_role.binary[each.key].id", "policy": "data.aws_iam_policy_document.binary[each.key].json"}
		if rp.Labels[1] == "keda" {
			want = map[string]string{"name": `"keda"`, "role": "aws_iam_role.keda.id", "policy": "data.aws_iam_policy_document.keda.json"}
		} else if rp.Labels[1] != "binary" {
			t.Errorf("%s: a role policy outside local.aws_statements", rp.name())
			continue
		}
		for name, w := range want {
			if got := rp.attrText(name); got != w {
				t.Errorf("%s: %s = %s, want %s", rp.name(), name, got, w)
			}
		}
	}
	doc := m.one(t, "data", "aws_iam_policy_document", "binary")
	dyn := doc.children("dynamic")
	if doc.attrText("for_each") != "local.aws_statements" || len(doc.children("statement")) != 0 || len(dyn) != 1 ||
		dyn[0].Labels[0] != "statement" || dyn[0].attrText("for_each") != "each.value" || len(dyn[0].children("content")) != 1 {
		t.Fatalf("%s: want for_each = local.aws_statements and one dynamic statement over each.value", doc.name())
	}
	content := dyn[0].children("content")[0]
	if len(content.Body.Attributes) != 3 || len(content.Body.Blocks) != 0 {
		t.Errorf("%s: a statement takes sid, actions and resources only (effect Allow, no condition)", doc.name())
	}
	for _, name := range []string{"sid", "actions", "resources"} {
		if got := content.attrText(name); got != "statement.value."+name {
			t.Errorf("%s: statement %s = %s", doc.name(), name, got)
		}
	}

	out := map[string]map[string]map[string]bool{}
	grant := func(bin, doc, sid string, resources, actions []string) {
		if out[bin] == nil {
			out[bin] = map[string]map[string]bool{}
		}
		for _, r := range resources {
			if r == `"*"` || strings.Contains(r, `*"`) && r != objects && r != thumbnails {
				t.Errorf("%s: statement %s grants on %s", doc, sid, r)
			}
			if out[bin][r] == nil {
				out[bin][r] = map[string]bool{}
			}
			for _, a := range actions {
				if strings.Contains(a, "*") {
					t.Errorf("%s: wildcard action %s", doc, a)
				}
				out[bin][r][a] = true
			}
		}
	}
	for _, st := range awsStatements(t, m) {
		grant(st.binary, "local.aws_statements."+st.binary, st.sid, st.resources, st.actions)
	}
	for _, st := range m.one(t, "data", "aws_iam_policy_document", "keda").children("statement") {
		if e := st.attrText("effect"); e != "" && e != `"Allow"` {
			t.Errorf("keda: statement %s has effect %s", st.attrText("sid"), e)
		}
		if len(st.Body.Attributes) != 3 || len(st.Body.Blocks) != 0 {
			t.Errorf("keda: statement %s takes more than sid, actions and resources", st.attrText("sid"))
		}
		res := st.attr("resources")
		if res == nil {
			t.Fatalf("keda: statement %s has no resources", st.attrText("sid"))
		}
		tuple := strings.TrimSuffix(strings.TrimPrefix(st.text(res.Expr), "["), "]")
		grant("keda", "keda", st.attrText("sid"), strings.Split(tuple, ", "), literalStrings(t, st, "actions"))
	}
	return out
}

// awsStatement is one statement of local.aws_statements, as written: resources as their
// source.
type awsStatement struct {
	binary, sid        string
	actions, resources []string
}

// awsStatements reads local.aws_statements: per binary a list of statements, each an object
// literal (a literal sid and actions, resources as written) or another local holding one.
func awsStatements(t *testing.T, m *module) []awsStatement {
	t.Helper()
	locals := m.locals()
	obj := m.objectLocal(t, "aws_statements")
	lit := func(what string, e hclsyntax.Expression) cty.Value {
		return literal(t, "local.aws_statements: "+what, e)
	}
	var out []awsStatement
	for _, item := range obj.Items {
		bin := lit("a key", item.KeyExpr).AsString()
		list, ok := item.ValueExpr.(*hclsyntax.TupleConsExpr)
		if !ok {
			t.Fatalf("local.aws_statements[%q] is not a list literal", bin)
		}
		for _, e := range list.Exprs {
			src := locals["aws_statements"].in
			if ref, ok := e.(*hclsyntax.ScopeTraversalExpr); ok && ref.Traversal.RootName() == "local" && len(ref.Traversal) == 2 {
				name := ref.Traversal[1].(hcl.TraverseAttr).Name
				l, ok := locals[name]
				if !ok {
					t.Fatalf("local.aws_statements[%q]: no local.%s", bin, name)
				}
				e, src = l.Expr, l.in
			}
			fields, ok := e.(*hclsyntax.ObjectConsExpr)
			if !ok {
				t.Fatalf("local.aws_statements[%q]: a statement that is not an object literal", bin)
			}
			st := awsStatement{binary: bin}
			for _, f := range fields.Items {
				switch name := lit(bin+" field", f.KeyExpr).AsString(); name {
				case "sid":
					st.sid = lit(bin+" sid", f.ValueExpr).AsString()
				case "actions":
					st.actions = literalList(t, "local.aws_statements: "+bin+" actions", f.ValueExpr)
				case "resources":
					res, ok := f.ValueExpr.(*hclsyntax.TupleConsExpr)
					if !ok {
						t.Fatalf("local.aws_statements[%q]: resources of %s is not a list literal", bin, st.sid)
					}
					for _, r := range res.Exprs {
						st.resources = append(st.resources, src.text(r))
					}
				default:
					t.Errorf("local.aws_statements[%q]: statement field %s (a statement takes sid, actions and resources)", bin, name)
				}
			}
			if len(st.resources) == 0 || len(st.actions) == 0 {
				t.Errorf("local.aws_statements[%q]: statement %s without actions or resources", bin, st.sid)
			}
			out = append(out, st)
		}
	}
	return out
}

// Every AWS role grants exactly the table, resource by resource.
func TestAWSPoliciesGrantExactlyTheTable(t *testing.T) {
	m := loadModule(t)
	compareGrants(t, "policy", awsPolicies(t, m), awsGrants)
}

// compareGrants fails for every binary whose grants (what the Terraform gives, per resource)
// differ from the table's, and for grants to anything but the table's binaries.
func compareGrants(t *testing.T, what string, got map[string]map[string]map[string]bool, want map[string]map[string][]string) {
	t.Helper()
	for bin, grants := range want {
		for res, acts := range grants {
			if d := iam.Diff(got[bin][res], set(acts...)); d != "" {
				t.Errorf("%s on %s: the %s differs from the table: %s", bin, res, what, d)
			}
		}
		for res := range got[bin] {
			if _, ok := grants[res]; !ok {
				t.Errorf("%s: the %s grants %v on %s, which the table does not list", bin, what, iam.Keys(got[bin][res]), res)
			}
		}
	}
	for bin := range got {
		if _, ok := want[bin]; !ok {
			t.Errorf("a %s for %s, which is not a binary", what, bin)
		}
	}
}

// gcpBindings reads, for each binary's service account, the permissions bound per resource.
func gcpBindings(t *testing.T, m *module) map[string]map[string]map[string]bool {
	t.Helper()
	for _, kind := range []string{"google_project_iam_binding", "google_project_iam_policy", "google_pubsub_topic_iam_binding",
		"google_pubsub_topic_iam_policy", "google_pubsub_subscription_iam_binding", "google_pubsub_subscription_iam_policy"} {
		if n := len(m.all("resource", kind)); n > 0 {
			t.Errorf("%d %s: authoritative bindings would take roles from others; use *_iam_member", n, kind)
		}
	}
	// The custom roles and their bindings are one resource each over local.gcp_roles: the
	// resources must take what they bind from the entry, the entries are read as written.
	wantText := map[string]map[string]string{
		"resource google_project_iam_custom_role": {
			"for_each": "local.gcp_roles", "role_id": `"${local.role_prefix}_${each.key}"`,
			"title": "each.value.title", "permissions": "each.value.permissions",
		},
		"resource google_pubsub_topic_iam_member":        {"topic": "each.value.resource"},
		"resource google_pubsub_subscription_iam_member": {"subscription": "each.value.resource"},
		"resource google_project_iam_member":             {"project": "var.gcp_project_id"},
	}
	on := map[string]string{"google_pubsub_topic_iam_member": "topic", "google_pubsub_subscription_iam_member": "subscription", "google_project_iam_member": "database"}
	for kind, attrs := range wantText {
		b := m.one(t, "resource", strings.TrimPrefix(kind, "resource "), "binary")
		if o := on[b.Labels[0]]; o != "" {
			attrs["for_each"] = fmt.Sprintf(`{ for k, r in local.gcp_roles : k => r if r.on == %q }`, o)
			attrs["role"] = "google_project_iam_custom_role.binary[each.key].id"
			attrs["member"] = `"serviceAccount:${google_service_account.binary[each.value.binary].email}"`
		}
		for name, want := range attrs {
			if got := b.attrText(name); got != want {
				t.Errorf("%s: %s = %s, want %s", b.name(), name, got, want)
			}
		}
	}
	if n := len(m.all("resource", "google_project_iam_custom_role")); n != 1 {
		t.Errorf("%d google_project_iam_custom_role resources; the roles are the entries of local.gcp_roles", n)
	}
	db := m.one(t, "resource", "google_project_iam_member", "binary")
	if conds := db.children("condition"); len(conds) != 1 || conds[0].attrText("expression") != `"resource.name == \"${local.firestore_database_name}\""` {
		t.Errorf("%s: a project-wide grant without the condition on the index database", db.name())
	}
	for _, kind := range []string{"google_pubsub_topic_iam_member", "google_pubsub_subscription_iam_member", "google_project_iam_member"} {
		for _, b := range m.all("resource", kind) {
			if b.Labels[1] != "binary" && len(refWith(b.attr("member").Expr, "google_service_account.binary[")) > 0 {
				t.Errorf("%s binds a binary's service account outside local.gcp_roles", b.name())
			}
		}
	}

	out := map[string]map[string]map[string]bool{}
	for _, e := range gcpRoles(t, m) {
		resource := database
		switch e.on {
		case "topic", "subscription":
			resource = strings.TrimSuffix(e.resource, ".id")
		case "database":
			// The binding's condition names the index database; a resource here would be
			// read by nothing.
			if e.resource != "" {
				t.Errorf("role %s: on the database with resource = %s, which nothing reads (the binding's condition names the index database)", e.key, e.resource)
			}
		default:
			t.Errorf("role %s: on = %q, want topic, subscription or database", e.key, e.on)
			continue
		}
		if out[e.binary] == nil {
			out[e.binary] = map[string]map[string]bool{}
		}
		if out[e.binary][resource] == nil {
			out[e.binary][resource] = map[string]bool{}
		}
		for _, p := range e.permissions {
			out[e.binary][resource][p] = true
		}
	}
	return out
}

// gcpRole is one entry of local.gcp_roles, as written.
type gcpRole struct {
	key, binary, title, on, resource string
	permissions                      []string
}

// gcpRoles reads local.gcp_roles: a literal binary, title, on and list of permissions, and
// the reference of the resource, per entry.
func gcpRoles(t *testing.T, m *module) []gcpRole {
	t.Helper()
	lb := m.locals()["gcp_roles"]
	obj := m.objectLocal(t, "gcp_roles")
	lit := func(what string, e hclsyntax.Expression) cty.Value {
		return literal(t, "local.gcp_roles: "+what, e)
	}
	var out []gcpRole
	for _, item := range obj.Items {
		k := lit("a key", item.KeyExpr)
		e := gcpRole{key: k.AsString()}
		fields, ok := item.ValueExpr.(*hclsyntax.ObjectConsExpr)
		if !ok {
			t.Fatalf("local.gcp_roles.%s is not an object literal", e.key)
		}
		for _, f := range fields.Items {
			name := lit(e.key+" field", f.KeyExpr).AsString()
			switch name {
			case "binary":
				e.binary = lit(e.key+".binary", f.ValueExpr).AsString()
			case "title":
				e.title = lit(e.key+".title", f.ValueExpr).AsString()
			case "on":
				e.on = lit(e.key+".on", f.ValueExpr).AsString()
			case "resource":
				e.resource = lb.in.text(f.ValueExpr)
			case "permissions":
				e.permissions = literalList(t, "local.gcp_roles: "+e.key+".permissions", f.ValueExpr)
			default:
				t.Errorf("local.gcp_roles.%s: unknown field %s", e.key, name)
			}
		}
		out = append(out, e)
	}
	return out
}

// Every service account holds exactly the table's permissions, resource by resource.
func TestGCPBindingsGrantExactlyTheTable(t *testing.T) {
	m := loadModule(t)
	compareGrants(t, "binding", gcpBindings(t, m), gcpGrants)
	if m.local(t, "firestore_database_name") != `"projects/${var.gcp_project_id}/databases/${var.firestore_database}"` {
		t.Errorf("firestore_database_name = %s", m.local(t, "firestore_database_name"))
	}
}

// The Pub/Sub service agent may publish to the dead-letter topic and acknowledge on the
// source subscription, or dead-lettering never happens.
func TestPubSubServiceAgentCanDeadLetter(t *testing.T) {
	m := loadModule(t)
	if !strings.Contains(m.local(t, "pubsub_service_agent"), "@gcp-sa-pubsub.iam.gserviceaccount.com") {
		t.Fatalf("pubsub_service_agent = %s", m.local(t, "pubsub_service_agent"))
	}
	pub := m.one(t, "resource", "google_pubsub_topic_iam_member", "service_agent_dead_letter")
	if pub.attrText("topic") != deadLetterTopic+".id" || pub.attrText("role") != `"roles/pubsub.publisher"` || pub.attrText("member") != "local.pubsub_service_agent" {
		t.Errorf("dead-letter topic grant: %s %s %s", pub.attrText("topic"), pub.attrText("role"), pub.attrText("member"))
	}
	sub := m.one(t, "resource", "google_pubsub_subscription_iam_member", "service_agent_source")
	if sub.attrText("subscription") != subscription+".id" || sub.attrText("role") != `"roles/pubsub.subscriber"` || sub.attrText("member") != "local.pubsub_service_agent" {
		t.Errorf("source subscription grant: %s %s %s", sub.attrText("subscription"), sub.attrText("role"), sub.attrText("member"))
	}
	s := m.one(t, "resource", "google_pubsub_subscription", "indexer")
	dl := s.children("dead_letter_policy")
	if len(dl) != 1 || dl[0].attrText("dead_letter_topic") != deadLetterTopic+".id" || dl[0].attrText("max_delivery_attempts") != "var.pubsub_max_delivery_attempts" {
		t.Error("the subscription's dead-letter policy is not the dead-letter topic")
	}
	if len(s.children("retry_policy")) != 1 {
		t.Error("the subscription has no retry policy")
	}
	if m.one(t, "resource", "google_pubsub_subscription", "dead_letter").attrText("topic") != deadLetterTopic+".id" {
		t.Error("no subscription on the dead-letter topic")
	}
}

// The workload identity pool's AWS provider accepts only the roles of the binaries that run
// in the cluster and reach Google Cloud (the analyzer, the indexer and the console; which
// binaries those are is checked against the manifests and the code in names_test.go), and
// each may impersonate its own service account only.
func TestFederationOnlyInClusterBinaries(t *testing.T) {
	m := loadModule(t)
	if got := m.local(t, "google_federated"); got != `["analyzer", "indexer", "console"]` {
		t.Errorf("google_federated = %s", got)
	}
	p := m.one(t, "resource", "google_iam_workload_identity_pool_provider", "aws")
	cond := p.attr("attribute_condition")
	if cond == nil {
		t.Fatal("no attribute_condition")
	}
	if got := strings.Join(refs(cond.Expr), " "); got != `local.aws_assumed_role local.google_federated` {
		t.Errorf("attribute_condition refers to %s", got)
	}
	if !strings.Contains(p.attrText("attribute_condition"), `[for b in local.google_federated : "'${local.aws_assumed_role[b]}'"]`) {
		t.Errorf("attribute_condition = %s: want each of local.google_federated's roles", p.attrText("attribute_condition"))
	}
	if !strings.HasPrefix(p.attrText("attribute_condition"), `"attribute.aws_role in [`) {
		t.Errorf("attribute_condition = %s", p.attrText("attribute_condition"))
	}
	if !strings.Contains(p.attrText("attribute_mapping"), `"attribute.aws_role"`) {
		t.Error("attribute.aws_role is not mapped")
	}
	if !strings.Contains(m.local(t, "aws_assumed_role"), ":assumed-role/${aws_iam_role.binary[b].name}") {
		t.Errorf("aws_assumed_role = %s", m.local(t, "aws_assumed_role"))
	}
	fed := m.one(t, "resource", "google_service_account_iam_member", "from_aws")
	if fed.attrText("for_each") != `var.runtime != "gke" ? toset(local.google_federated) : toset([])` {
		t.Errorf("from_aws for_each = %s", fed.attrText("for_each"))
	}
	if fed.attrText("service_account_id") != "google_service_account.binary[each.key].name" ||
		!strings.Contains(fed.attrText("member"), "/attribute.aws_role/${local.aws_assumed_role[each.key]}") ||
		fed.attrText("role") != `"roles/iam.workloadIdentityUser"` {
		t.Errorf("from_aws binds %s to %s as %s", fed.attrText("member"), fed.attrText("service_account_id"), fed.attrText("role"))
	}
	gke := m.one(t, "resource", "google_service_account_iam_member", "from_gke")
	if !strings.Contains(gke.attrText("member"), `.svc.id.goog[${var.kubernetes_namespace}/${each.value}]`) || gke.attrText("service_account_id") != "google_service_account.binary[each.key].name" {
		t.Errorf("from_gke binds %s to %s", gke.attrText("member"), gke.attrText("service_account_id"))
	}
}

// Each AWS role trusts exactly its binary's Kubernetes service account (KEDA's role, KEDA's
// operator's), for STS.
func TestAWSRolesTrustTheirServiceAccount(t *testing.T) {
	m := loadModule(t)
	if got := m.one(t, "data", "aws_iam_policy_document", "trust").attrText("for_each"); got != "local.kubernetes_subjects" {
		t.Errorf("trust for_each = %s", got)
	}
	conds := m.statement(t, "trust").conditions()
	want := map[string]string{
		`"${local.issuer_host}:sub"`: `"StringEquals" [each.value]`,
		`"${local.issuer_host}:aud"`: `"StringEquals" ["sts.amazonaws.com"]`,
	}
	for k, v := range want {
		if conds[k] != v {
			t.Errorf("trust condition %s = %q, want %q", k, conds[k], v)
		}
	}
	if len(conds) != len(want) {
		t.Errorf("trust conditions %v", conds)
	}
	role := m.one(t, "resource", "aws_iam_role", "binary")
	if role.attrText("assume_role_policy") != "data.aws_iam_policy_document.trust[each.key].json" || role.attrText("for_each") != "local.kubernetes_service_accounts" {
		t.Errorf("binary roles: for_each %s, assume_role_policy %s", role.attrText("for_each"), role.attrText("assume_role_policy"))
	}
	if got := m.one(t, "resource", "aws_iam_role", "keda").attrText("assume_role_policy"); got != `data.aws_iam_policy_document.trust["keda"].json` {
		t.Errorf("KEDA's role: assume_role_policy = %s", got)
	}
}

// The analyzer's managed identity trusts the analyzer's service account and holds only the
// Cognitive Services User role, on the Vision account only; key authentication is off unless
// asked for, and the account has the custom subdomain Entra ID tokens need.
func TestAzureIdentity(t *testing.T) {
	m := loadModule(t)
	acct := m.one(t, "resource", "azurerm_cognitive_account", "vision")
	for attr, want := range map[string]string{
		"kind": `"ComputerVision"`, "local_auth_enabled": "var.vision_key_auth", "custom_subdomain_name": "var.vision_account_name",
		"location": "azurerm_resource_group.imgpipe.location",
	} {
		if got := acct.attrText(attr); got != want {
			t.Errorf("vision account %s = %s, want %s", attr, got, want)
		}
	}
	if m.one(t, "resource", "azurerm_resource_group", "imgpipe").attrText("location") != "var.azure_location" {
		t.Error("the resource group is not in var.azure_location")
	}
	fic := m.one(t, "resource", "azurerm_federated_identity_credential", "analyzer")
	for attr, want := range map[string]string{
		"issuer":    "var.kubernetes_oidc_issuer_url",
		"subject":   `local.kubernetes_subjects["analyzer"]`,
		"audience":  `["api://AzureADTokenExchange"]`,
		"parent_id": "azurerm_user_assigned_identity.analyzer.id",
	} {
		if got := fic.attrText(attr); got != want {
			t.Errorf("federated credential %s = %s, want %s", attr, got, want)
		}
	}
	ras := m.all("resource", "azurerm_role_assignment")
	if len(ras) != 1 {
		t.Fatalf("%d role assignments", len(ras))
	}
	for attr, want := range map[string]string{
		"scope": "azurerm_cognitive_account.vision.id", "role_definition_name": `"Cognitive Services User"`,
		"principal_id": "azurerm_user_assigned_identity.analyzer.principal_id",
	} {
		if got := ras[0].attrText(attr); got != want {
			t.Errorf("role assignment %s = %s, want %s", attr, got, want)
		}
	}
}
