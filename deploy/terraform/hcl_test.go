package terraform_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/tryfunc"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"

	"imgpipe/pkg/console"
)

// The files are formatted as `terraform fmt` / `tofu fmt` would leave them (hclwrite.Format
// is the formatter both use).
func TestFormatted(t *testing.T) {
	m := loadModule(t)
	for path, src := range m.files {
		if got := hclwrite.Format(src); string(got) != string(src) {
			t.Errorf("%s is not formatted (terraform fmt would change it)", path)
		}
	}
}

func TestVariablesTypedAndDescribed(t *testing.T) {
	m := loadModule(t)
	vars := m.all("variable")
	if len(vars) < 20 {
		t.Fatalf("only %d variables", len(vars))
	}
	for _, v := range vars {
		name := v.Labels[0]
		ta := v.attr("type")
		if ta == nil {
			t.Errorf("variable %s has no type", name)
			continue
		}
		ty, defaults, diags := typeexpr.TypeConstraintWithDefaults(ta.Expr)
		if diags.HasErrors() {
			t.Errorf("variable %s: type: %s", name, diags.Error())
			continue
		}
		desc := v.attr("description")
		if desc == nil {
			t.Errorf("variable %s has no description", name)
			continue
		}
		if d, diags := desc.Expr.Value(nil); diags.HasErrors() || d.Type() != cty.String || len(strings.TrimSpace(d.AsString())) < 10 {
			t.Errorf("variable %s: the description must be a literal sentence", name)
		}
		// A default must be of the type and pass the variable's own validations.
		if da := v.attr("default"); da != nil {
			def, diags := da.Expr.Value(nil)
			if diags.HasErrors() {
				t.Errorf("variable %s: default: %s", name, diags.Error())
				continue
			}
			if defaults != nil {
				def = defaults.Apply(def)
			}
			val, err := convert.Convert(def, ty)
			if err != nil {
				t.Errorf("variable %s: default is not a %s: %v", name, ty.FriendlyName(), err)
				continue
			}
			if msg := validate(t, v, val); msg != "" {
				t.Errorf("variable %s: its default fails its validation: %s", name, msg)
			}
		}
	}
}

// Terraform's startswith and endswith, which go-cty's standard library lacks.
var startsWith = function.New(&function.Spec{
	Params: []function.Parameter{{Name: "s", Type: cty.String}, {Name: "prefix", Type: cty.String}},
	Type:   function.StaticReturnType(cty.Bool),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		return cty.BoolVal(strings.HasPrefix(args[0].AsString(), args[1].AsString())), nil
	},
})

var endsWith = function.New(&function.Spec{
	Params: []function.Parameter{{Name: "s", Type: cty.String}, {Name: "suffix", Type: cty.String}},
	Type:   function.StaticReturnType(cty.Bool),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		return cty.BoolVal(strings.HasSuffix(args[0].AsString(), args[1].AsString())), nil
	},
})

// Terraform's alltrue.
var allTrue = function.New(&function.Spec{
	Params: []function.Parameter{{Name: "list", Type: cty.List(cty.Bool)}},
	Type:   function.StaticReturnType(cty.Bool),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		for it := args[0].ElementIterator(); it.Next(); {
			if _, v := it.Element(); v.False() {
				return cty.False, nil
			}
		}
		return cty.True, nil
	},
})

var functions = map[string]function.Function{
	"can": tryfunc.CanFunc, "regex": stdlib.RegexFunc, "contains": stdlib.ContainsFunc, "alltrue": allTrue,
	"floor": stdlib.FloorFunc, "length": stdlib.LengthFunc, "startswith": startsWith, "endswith": endsWith,
}

// validate evaluates the variable's validation blocks for val, returning the error message of
// the first that fails, or "".
func validate(t *testing.T, v *block, val cty.Value) string {
	t.Helper()
	ctx := &hcl.EvalContext{
		Variables: map[string]cty.Value{"var": cty.ObjectVal(map[string]cty.Value{v.Labels[0]: val})},
		Functions: functions,
	}
	for _, vb := range v.children("validation") {
		c := vb.attr("condition")
		if c == nil {
			t.Fatalf("variable %s: validation without condition", v.Labels[0])
		}
		got, diags := c.Expr.Value(ctx)
		if diags.HasErrors() {
			t.Fatalf("variable %s: condition: %s", v.Labels[0], diags.Error())
		}
		if got.False() {
			msg, _ := vb.attr("error_message").Expr.Value(nil)
			return msg.AsString()
		}
	}
	return ""
}

func TestValidations(t *testing.T) {
	m := loadModule(t)
	str := cty.StringVal
	num := func(n int64) cty.Value { return cty.NumberIntVal(n) }
	cases := []struct {
		variable string
		good     []cty.Value
		bad      []cty.Value
	}{
		// Microsoft's list of the regions with Image Analysis 4.0 captions (concept page
		// "Image captions (version 4.0)", looked up 2026-12-01).
		{"azure_location",
			[]cty.Value{str("eastus"), str("westus"), str("francecentral"), str("northeurope"), str("westeurope"), str("southeastasia"), str("eastasia"), str("koreacentral")},
			[]cty.Value{str("westus2"), str("germanywestcentral"), str("uksouth"), str("East US"), str("")}},
		{"runtime", []cty.Value{str("eks"), str("gke"), str("aks")}, []cty.Value{str("ecs"), str("EKS")}},
		{"kubernetes_oidc_issuer_url",
			[]cty.Value{str("https://oidc.eks.eu-west-1.amazonaws.com/id/ABC123"), str("https://container.googleapis.com/v1/projects/p/locations/europe-west1/clusters/c"),
				str("https://westeurope.oic.prod-aks.azure.com/11111111-2222-3333-4444-555555555555/66666666-7777-8888-9999-000000000000/")},
			[]cty.Value{str("http://oidc.example"), str("https://oidc.example/?x=1"), str("oidc.example"), str("https://")}},
		{"console_origins",
			[]cty.Value{cty.ListValEmpty(cty.String), cty.ListVal([]cty.Value{str("https://console.example.com"), str("http://127.0.0.1:8080")})},
			[]cty.Value{cty.ListVal([]cty.Value{str("https://console.example.com/")}), cty.ListVal([]cty.Value{str("console.example.com")})}},
		{"drop_prefix", []cty.Value{str("upload/"), str("a/b/")}, []cty.Value{str("upload"), str("/upload/")}},
		{"thumbnail_prefix", []cty.Value{str("thumbnail/"), str("a/b/")}, []cty.Value{str("thumbnail"), str("/thumbnail/")}},
		{"bucket_name", []cty.Value{str("imgpipe-drop"), str("a.b-c")}, []cty.Value{str("Imgpipe"), str("ab"), str("a..b"), str("-ab")}},
		{"queue_retention_seconds", []cty.Value{num(60), num(1209599)}, []cty.Value{num(59), num(1209600)}},
		{"analyzer_visibility_timeout_seconds", []cty.Value{num(10), num(43200)}, []cty.Value{num(9), num(43201), cty.NumberFloatVal(30.5)}},
		{"analyzer_wait_time_seconds", []cty.Value{num(0), num(20)}, []cty.Value{num(21), num(-1)}},
		{"queue_max_receive_count", []cty.Value{num(1), num(1000)}, []cty.Value{num(0), num(1001)}},
		{"pubsub_max_delivery_attempts", []cty.Value{num(5), num(100)}, []cty.Value{num(4), num(101)}},
		{"vision_sku", []cty.Value{str("S1"), str("F0")}, []cty.Value{str("S0"), str("s1")}},
		{"firestore_database", []cty.Value{str("(default)"), str("imgpipe-index")}, []cty.Value{str("Imgpipe"), str("ab")}},
		{"name_prefix", []cty.Value{str("imgpipe"), str("img-2")}, []cty.Value{str("Img"), str("ab"), str("imgpipe-")}},
	}
	for _, tc := range cases {
		v := m.one(t, "variable", tc.variable)
		for _, g := range tc.good {
			if msg := validate(t, v, g); msg != "" {
				t.Errorf("%s = %#v rejected: %s", tc.variable, g, msg)
			}
		}
		for _, b := range tc.bad {
			if msg := validate(t, v, b); msg == "" {
				t.Errorf("%s = %#v accepted", tc.variable, b)
			}
		}
	}
}

// The queue's visibility timeout and long-poll wait are the analyzer's own settings, and the
// DLQ keeps messages 14 days.
func TestQueueMatchesAnalyzerSettings(t *testing.T) {
	m := loadModule(t)
	q := m.one(t, "resource", "aws_sqs_queue", "queue")
	if got := q.attrText("visibility_timeout_seconds"); got != "var.analyzer_visibility_timeout_seconds" {
		t.Errorf("visibility_timeout_seconds = %s", got)
	}
	if got := q.attrText("receive_wait_time_seconds"); got != "var.analyzer_wait_time_seconds" {
		t.Errorf("receive_wait_time_seconds = %s", got)
	}
	if got := q.attrText("sqs_managed_sse_enabled"); got != "true" {
		t.Errorf("queue SSE = %q", got)
	}
	if got := q.attrText("redrive_policy"); !strings.Contains(got, "aws_sqs_queue.dlq.arn") || !strings.Contains(got, "var.queue_max_receive_count") {
		t.Errorf("redrive_policy = %s", got)
	}
	dlq := m.one(t, "resource", "aws_sqs_queue", "dlq")
	if got := dlq.attrText("message_retention_seconds"); got != "local.dlq_retention_seconds" {
		t.Errorf("DLQ retention = %s", got)
	}
	if got := m.local(t, "dlq_retention_seconds"); got != "1209600" {
		t.Errorf("dlq_retention_seconds = %s, want 14 days", got)
	}
	if got := dlq.attrText("sqs_managed_sse_enabled"); got != "true" {
		t.Errorf("DLQ SSE = %q", got)
	}
	allow := m.one(t, "resource", "aws_sqs_queue_redrive_allow_policy", "dlq")
	if got := allow.attrText("redrive_allow_policy"); !strings.Contains(got, `"byQueue"`) || !strings.Contains(got, "[aws_sqs_queue.queue.arn]") {
		t.Errorf("redrive_allow_policy = %s", got)
	}
	out := m.one(t, "output", "analyzer_settings").attrText("value")
	for _, want := range []string{`IMGPIPE_VISIBILITY_TIMEOUT = "${var.analyzer_visibility_timeout_seconds}s"`, `IMGPIPE_WAIT_TIME = "${var.analyzer_wait_time_seconds}s"`} {
		if !strings.Contains(out, want) {
			t.Errorf("analyzer_settings lacks %s", want)
		}
	}
}

func TestBucket(t *testing.T) {
	m := loadModule(t)
	pab := m.one(t, "resource", "aws_s3_bucket_public_access_block", "drop")
	for _, a := range []string{"block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets"} {
		if pab.attrText(a) != "true" {
			t.Errorf("public access block %s = %q", a, pab.attrText(a))
		}
	}
	sse := m.one(t, "resource", "aws_s3_bucket_server_side_encryption_configuration", "drop")
	if len(sse.children("rule")) != 1 || len(sse.children("rule")[0].children("apply_server_side_encryption_by_default")) != 1 {
		t.Error("no default encryption rule")
	}
	ver := m.one(t, "resource", "aws_s3_bucket_versioning", "drop")
	if ver.attrText("count") != "var.bucket_versioning ? 1 : 0" {
		t.Errorf("versioning is not optional: count = %s", ver.attrText("count"))
	}
	n := m.one(t, "resource", "aws_s3_bucket_notification", "drop")
	qs := n.children("queue")
	if len(qs) != 1 {
		t.Fatalf("%d queue notifications", len(qs))
	}
	if got := literalStrings(t, qs[0], "events"); strings.Join(got, ",") != "s3:ObjectCreated:*,s3:ObjectRemoved:*,s3:LifecycleExpiration:*" {
		t.Errorf("events %v", got)
	}
	if qs[0].attrText("filter_prefix") != "var.drop_prefix" || qs[0].attrText("queue_arn") != "aws_sqs_queue.queue.arn" {
		t.Errorf("notification prefix %s, queue %s", qs[0].attrText("filter_prefix"), qs[0].attrText("queue_arn"))
	}
	if !strings.Contains(n.attrText("depends_on"), "aws_sqs_queue_policy.queue") {
		t.Error("the notification must wait for the queue policy")
	}
}

// The bucket's CORS rule is the one the console's browser uploads need (console.CORSRule),
// for the origins the console is served from, and only when there are some.
func TestBucketCORSIsTheConsoles(t *testing.T) {
	m := loadModule(t)
	c := m.one(t, "resource", "aws_s3_bucket_cors_configuration", "drop")
	if got := c.attrText("count"); got != "length(var.console_origins) > 0 ? 1 : 0" {
		t.Errorf("count = %s: the rule must exist exactly when there are console origins", got)
	}
	rules := c.children("cors_rule")
	if len(rules) != 1 {
		t.Fatalf("%d CORS rules", len(rules))
	}
	r := rules[0]
	want := console.CORSRule("https://console.example.com")
	if r.attrText("allowed_origins") != "var.console_origins" {
		t.Errorf("allowed_origins = %s", r.attrText("allowed_origins"))
	}
	for attr, w := range map[string][]string{
		"allowed_methods": want.AllowedMethods, "allowed_headers": want.AllowedHeaders, "expose_headers": want.ExposeHeaders,
	} {
		if got := literalStrings(t, r, attr); strings.Join(got, ",") != strings.Join(w, ",") {
			t.Errorf("%s = %v, console.CORSRule has %v", attr, got, w)
		}
	}
	if got, w := r.attrText("id"), strconv.Quote(aws.ToString(want.ID)); got != w {
		t.Errorf("id = %s, want %s", got, w)
	}
	if got, w := r.attrText("max_age_seconds"), strconv.Itoa(int(aws.ToInt32(want.MaxAgeSeconds))); got != w {
		t.Errorf("max_age_seconds = %s, want %s", got, w)
	}
}

// Only this bucket, in this account, may send to the queue.
func TestQueuePolicyOnlyThisBucket(t *testing.T) {
	m := loadModule(t)
	st := m.statement(t, "queue")
	if got := literalStrings(t, st, "actions"); strings.Join(got, ",") != "sqs:SendMessage" {
		t.Errorf("actions %v", got)
	}
	ps := st.children("principals")
	if len(ps) != 1 || ps[0].attrText("type") != `"Service"` || strings.Join(literalStrings(t, ps[0], "identifiers"), ",") != "s3.amazonaws.com" {
		t.Errorf("principals must be s3.amazonaws.com only")
	}
	conds := st.conditions()
	want := map[string]string{
		`"aws:SourceArn"`:     `"ArnEquals" [aws_s3_bucket.drop.arn]`,
		`"aws:SourceAccount"`: `"StringEquals" [data.aws_caller_identity.current.account_id]`,
	}
	for k, v := range want {
		if conds[k] != v {
			t.Errorf("condition %s = %q, want %q", k, conds[k], v)
		}
	}
	if m.one(t, "resource", "aws_sqs_queue_policy", "queue").attrText("policy") != "data.aws_iam_policy_document.queue.json" {
		t.Error("the queue policy is not the document")
	}
}
