// Package settings reads, from the product's code, the environment variables each binary
// takes: every setting declared on an imgpipe/pkg/config.Set in the binary's main package,
// and whether it is required.
package settings

import (
	"fmt"
	"go/ast"
	"go/constant"
	"go/types"
	"strings"

	"golang.org/x/tools/go/packages"
)

const configPkg = "imgpipe/pkg/config"

// SDKEnv are the environment variables the cloud SDKs and the Go runtime read, which the
// binaries do not declare as settings of their own (README's Settings section names them).
// Outputs and manifests may give them besides the declared settings.
var SDKEnv = map[string]bool{
	"AWS_REGION":                     true, // aws-sdk-go-v2's region
	"AWS_ROLE_ARN":                   true, // aws-sdk-go-v2's web identity
	"AWS_WEB_IDENTITY_TOKEN_FILE":    true,
	"GOOGLE_APPLICATION_CREDENTIALS": true, // Application Default Credentials, and pkg/gcpauth
	"GOMEMLIMIT":                     true, // the Go runtime
	"GODEBUG":                        true,
}

// Setting is one declared setting.
type Setting struct {
	Flag, Env string
	Required  bool
}

// Env loads the main packages (relative to the product module at dir, such as
// "./cmd/analyzer") and returns each one's settings that have an environment variable, by
// variable name.
func Env(dir string, mains map[string]string) (map[string]map[string]Setting, error) {
	cfg := &packages.Config{
		Mode: packages.NeedName | packages.NeedFiles | packages.NeedSyntax | packages.NeedTypes | packages.NeedTypesInfo | packages.NeedImports,
		Dir:  dir,
	}
	var patterns []string
	byPath := map[string]string{}
	for bin, rel := range mains {
		patterns = append(patterns, rel)
		byPath[strings.TrimPrefix(rel, "./")] = bin
	}
	pkgs, err := packages.Load(cfg, patterns...)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", dir, err)
	}
	out := map[string]map[string]Setting{}
	for _, p := range pkgs {
		if len(p.Errors) > 0 {
			return nil, fmt.Errorf("load %s: %v", p.PkgPath, p.Errors[0])
		}
		bin := ""
		for rel, b := range byPath {
			if strings.HasSuffix(p.PkgPath, "/"+rel) {
				bin = b
			}
		}
		if bin == "" {
			return nil, fmt.Errorf("package %s is none of the binaries", p.PkgPath)
		}
		out[bin] = declared(p)
	}
	return out, nil
}

// declared finds the calls of (*config.Set).String/Int/Float/Bool/Duration(p, flag, env, ...).
func declared(p *packages.Package) map[string]Setting {
	out := map[string]Setting{}
	for _, f := range p.Syntax {
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) < 3 {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			fn, ok := p.TypesInfo.Uses[sel.Sel].(*types.Func)
			if !ok || fn.Pkg() == nil || fn.Pkg().Path() != configPkg {
				return true
			}
			recv := fn.Type().(*types.Signature).Recv()
			if recv == nil || !strings.HasSuffix(recv.Type().String(), configPkg+".Set") {
				return true
			}
			flag, env := stringConst(p, call.Args[1]), stringConst(p, call.Args[2])
			if env == "" {
				return true
			}
			s := Setting{Flag: flag, Env: env}
			for _, a := range call.Args[3:] {
				if c, ok := a.(*ast.CallExpr); ok {
					if f, ok := typeutilCallee(p, c).(*types.Func); ok && f.Pkg() != nil && f.Pkg().Path() == configPkg && f.Name() == "Required" {
						s.Required = true
					}
				}
			}
			prev, seen := out[env]
			s.Required = s.Required || (seen && prev.Required)
			out[env] = s
			return true
		})
	}
	return out
}

func stringConst(p *packages.Package, e ast.Expr) string {
	tv, ok := p.TypesInfo.Types[e]
	if !ok || tv.Value == nil || tv.Value.Kind() != constant.String {
		return ""
	}
	return constant.StringVal(tv.Value)
}

func typeutilCallee(p *packages.Package, c *ast.CallExpr) types.Object {
	switch f := c.Fun.(type) {
	case *ast.Ident:
		return p.TypesInfo.Uses[f]
	case *ast.SelectorExpr:
		return p.TypesInfo.Uses[f.Sel]
	}
	return nil
}
