// Package iam derives, from the product's code, the cloud API operations each binary can
// reach, and maps them to the IAM actions (AWS) and permissions (Google Cloud) its policies
// must grant: no more, no less.
//
// Derived: which operations each binary reaches. The product's packages and the Google
// client libraries (Pub/Sub, Firestore) are loaded from source, every binary's call graph is
// built from its main function by rapid type analysis (golang.org/x/tools/go/callgraph/rta),
// and every call or method value that reaches a method of a cloud client type (the AWS SDK's
// S3 and SQS clients, the generated Pub/Sub and Firestore RPC clients, the Firestore write
// methods) is an operation. Hand-kept: the table from operation to IAM action (Actions), and
// which resource each permission is granted on (in the tests beside the Terraform).
package iam

import (
	"fmt"
	"go/ast"
	"go/token"
	"go/types"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/tools/go/callgraph"
	"golang.org/x/tools/go/callgraph/rta"
	"golang.org/x/tools/go/packages"
	"golang.org/x/tools/go/ssa"
)

// Op is one operation: a method of a cloud client type, such as
// {"github.com/aws/aws-sdk-go-v2/service/sqs", "Client", "ReceiveMessage"}.
type Op struct {
	Pkg, Type, Method string
}

func (o Op) String() string { return fmt.Sprintf("%s.%s.%s", filepath.Base(o.Pkg), o.Type, o.Method) }

// Tracked are the client types whose methods are operations. Firestore's Transaction,
// DocumentRef, WriteBatch and BulkWriter are tracked for their write methods: a Commit's
// permissions depend on what it writes.
var Tracked = map[string][]string{
	"github.com/aws/aws-sdk-go-v2/service/s3":  {"Client", "PresignClient"},
	"github.com/aws/aws-sdk-go-v2/service/sqs": {"Client"},
	"cloud.google.com/go/pubsub/v2/apiv1":      {"TopicAdminClient", "SubscriptionAdminClient", "SchemaClient"},
	"cloud.google.com/go/firestore/apiv1":      {"Client"},
	"cloud.google.com/go/firestore":            {"Transaction", "DocumentRef", "WriteBatch", "BulkWriter"},
}

// sourceLibraries are loaded with their function bodies, so that the operations the
// high-level clients make (Publisher.Publish, Subscriber.Receive, DocumentRef.Get,
// Client.RunTransaction...) are found in their own code rather than assumed.
var sourceLibraries = []string{
	"cloud.google.com/go/pubsub/v2",
	"cloud.google.com/go/firestore",
}

// Binaries maps each binary to its main package, relative to the product module.
var Binaries = map[string]string{
	"analyzer":   "./cmd/analyzer",
	"indexer":    "./cmd/indexer",
	"uploader":   "./cmd/uploader",
	"dlq-replay": "./dlq-replay",
	"console":    "./cmd/console",
}

// KEDA are the operations KEDA's aws-sqs-queue scaler makes for the analyzer's ScaledObject,
// with the role of its own the Terraform gives it. They are KEDA's code, not the product's, so
// they are not derived here: deploy/k8s's tests run KEDA's scaler against the SQS stand-in
// and fail when the calls it makes differ from these.
var KEDA = map[Op]bool{
	{Pkg: sqsPkg, Type: "Client", Method: "GetQueueAttributes"}: true,
}

// Derive loads the product module at dir and returns, for each binary, the operations its
// code can reach.
func Derive(dir string) (map[string]map[Op]bool, error) {
	return DeriveFrom(dir, append([]string{"./..."}, sourceLibraries...), Binaries)
}

// DeriveFrom loads the packages matching patterns in the module at dir, with their bodies,
// and returns the operations each of binaries (name to main package, relative to the module)
// can reach.
func DeriveFrom(dir string, patterns []string, binaries map[string]string) (map[string]map[Op]bool, error) {
	cfg := &packages.Config{
		Mode: packages.NeedName | packages.NeedFiles | packages.NeedCompiledGoFiles | packages.NeedImports |
			packages.NeedTypes | packages.NeedTypesSizes | packages.NeedSyntax | packages.NeedTypesInfo | packages.NeedModule,
		Dir: dir,
		// The binaries as they are built, not their tests.
		Tests: false,
	}
	roots, err := packages.Load(cfg, patterns...)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", dir, err)
	}
	var errs []string
	for _, p := range roots {
		for _, e := range p.Errors {
			errs = append(errs, e.Error())
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("load %s: %s", dir, strings.Join(errs, "; "))
	}

	prog, mains := program(roots)
	out := map[string]map[Op]bool{}
	for bin, rel := range binaries {
		main := mains[strings.TrimPrefix(rel, "./")]
		if main == nil {
			return nil, fmt.Errorf("binary %s: no main package %s", bin, rel)
		}
		fns := []*ssa.Function{main.Func("main")}
		if init := main.Func("init"); init != nil {
			fns = append(fns, init)
		}
		res := rta.Analyze(fns, true)
		out[bin] = operations(res.CallGraph, fns)
	}
	_ = prog
	return out, nil
}

// program builds SSA for the loaded packages (with bodies) and their dependencies (types
// only), and returns the main packages by their path inside the module.
func program(roots []*packages.Package) (*ssa.Program, map[string]*ssa.Package) {
	fset := token.NewFileSet()
	if len(roots) > 0 && roots[0].Fset != nil {
		fset = roots[0].Fset
	}
	prog := ssa.NewProgram(fset, ssa.InstantiateGenerics)
	created := map[*types.Package]bool{}
	withBody := map[*types.Package]*packages.Package{}
	for _, p := range roots {
		withBody[p.Types] = p
	}
	var create func(tp *types.Package)
	create = func(tp *types.Package) {
		if created[tp] {
			return
		}
		created[tp] = true
		for _, imp := range tp.Imports() {
			create(imp)
		}
		if p, ok := withBody[tp]; ok {
			prog.CreatePackage(tp, p.Syntax, p.TypesInfo, true)
			return
		}
		prog.CreatePackage(tp, nil, nil, true)
	}
	mains := map[string]*ssa.Package{}
	for _, p := range roots {
		create(p.Types)
	}
	prog.Build()
	modPath := ""
	for _, p := range roots {
		if p.Module != nil && p.Module.Main {
			modPath = p.Module.Path
		}
	}
	for _, p := range roots {
		if p.Name != "main" {
			continue
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(p.PkgPath, modPath), "/")
		if p.PkgPath == modPath {
			rel = "."
		}
		if modPath == "" {
			rel = p.PkgPath[strings.Index(p.PkgPath, "/")+1:]
		}
		mains[rel] = prog.Package(p.Types)
	}
	return prog, mains
}

// operations walks the call graph from the roots and collects every call that ends in a
// method of a tracked type. It is stricter than RTA's own reachability in two ways, both to
// keep a binary from being attributed operations it never makes:
//   - RTA counts as reachable every exported method of a type that may be inspected by
//     reflection (a client passed to a logger); here only call edges are followed, and no
//     client method is called by reflection in the product;
//   - RTA resolves a call of a function value to every address-taken function of its type in
//     the whole reachable program; here a function whose address is taken in code reached
//     from the roots is reached (whoever calls it: often a library without bodies here, such
//     as the publisher's bundler), and calls of function values are not followed otherwise.
func operations(cg *callgraph.Graph, roots []*ssa.Function) map[Op]bool {
	ops := map[Op]bool{}
	seen := map[*callgraph.Node]bool{}
	var queue []*callgraph.Node
	visit := func(n *callgraph.Node) {
		if n != nil && !seen[n] {
			seen[n] = true
			queue = append(queue, n)
		}
	}
	for _, fn := range roots {
		visit(cg.Nodes[fn])
	}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		for _, f := range functionValues(n.Func) {
			if op, ok := tracked(f); ok {
				ops[op] = true // a method value of a client
			}
			visit(cg.Nodes[f])
		}
		for _, e := range n.Out {
			if op, ok := tracked(e.Callee.Func); ok {
				ops[op] = true
			}
			if c := e.Site.Common(); c.StaticCallee() == nil && !c.IsInvoke() {
				continue // a function value: reached where its address is taken
			}
			visit(e.Callee)
		}
	}
	return ops
}

// functionValues returns the functions fn uses as values (closures, method values, function
// references), not only calls.
func functionValues(fn *ssa.Function) []*ssa.Function {
	if fn == nil {
		return nil
	}
	var out []*ssa.Function
	var ops []*ssa.Value
	for _, b := range fn.Blocks {
		for _, instr := range b.Instrs {
			ops = instr.Operands(ops[:0])
			call, isCall := instr.(ssa.CallInstruction)
			for i, op := range ops {
				if op == nil {
					continue
				}
				f, ok := (*op).(*ssa.Function)
				if !ok {
					continue
				}
				if isCall && i == 0 && call.Common().Value == f {
					continue // a static call, not a value
				}
				out = append(out, f)
			}
		}
	}
	return out
}

func tracked(fn *ssa.Function) (Op, bool) {
	if fn == nil {
		return Op{}, false
	}
	recv := fn.Signature.Recv()
	if recv == nil {
		return paginator(fn)
	}
	t := recv.Type()
	if p, ok := t.(*types.Pointer); ok {
		t = p.Elem()
	}
	named, ok := t.(*types.Named)
	if !ok || named.Obj().Pkg() == nil {
		return Op{}, false
	}
	pkg := named.Obj().Pkg().Path()
	for _, name := range Tracked[pkg] {
		if named.Obj().Name() == name && ast.IsExported(fn.Name()) {
			return Op{Pkg: pkg, Type: name, Method: fn.Name()}, true
		}
	}
	return Op{}, false
}

// Sorted returns the operations in a stable order, for messages.
func Sorted(ops map[Op]bool) []Op {
	out := make([]Op, 0, len(ops))
	for o := range ops {
		out = append(out, o)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// paginator: the AWS SDK's New<Operation>Paginator calls <Operation> on the client inside
// the SDK, whose bodies are not loaded, so the constructor stands for the operation.
func paginator(fn *ssa.Function) (Op, bool) {
	if fn.Pkg == nil || fn.Parent() != nil {
		return Op{}, false
	}
	pkg := fn.Pkg.Pkg.Path()
	if pkg != s3Pkg && pkg != sqsPkg {
		return Op{}, false
	}
	name := fn.Name()
	if !strings.HasPrefix(name, "New") || !strings.HasSuffix(name, "Paginator") || len(name) <= len("NewPaginator") {
		return Op{}, false
	}
	return Op{Pkg: pkg, Type: "Client", Method: strings.TrimSuffix(strings.TrimPrefix(name, "New"), "Paginator")}, true
}
