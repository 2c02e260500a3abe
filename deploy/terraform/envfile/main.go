// Command envfile turns `terraform output -json` of deploy/terraform into what the binaries
// read: the kustomize component of the deploy/k8s overlay for the deployment's runtime, or one
// binary's env file. `make tf-env` runs it.
//
//	terraform -chdir=deploy/terraform output -json > out.json
//	cd deploy && go run ./terraform/envfile < ../out.json                 # k8s/overlays/RUNTIME/terraform
//	cd deploy && go run ./terraform/envfile -format env -binary dlq-replay < ../out.json > dlq-replay.env
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"imgpipe/deploy/internal/tfout"
)

func main() {
	if err := run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr); err != nil {
		if err == flag.ErrHelp {
			os.Exit(0)
		}
		fmt.Fprintf(os.Stderr, "envfile: %v\n", err)
		os.Exit(2)
	}
}

// overlays is where the deploy/k8s overlays are, relative to the deploy module.
const overlays = "k8s/overlays"

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("envfile", flag.ContinueOnError)
	fs.SetOutput(stderr)
	format := fs.String("format", "kustomize", "kustomize (the component a deploy/k8s overlay takes, written to -out) or env (KEY=value lines of one binary, on standard output)")
	binary := fs.String("binary", "", "with -format env: "+strings.Join(tfout.Binaries, ", "))
	out := fs.String("out", "", "with -format kustomize: the component's folder (default "+overlays+"/RUNTIME/terraform, RUNTIME the output's)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: envfile [-format kustomize [-out DIR] | -format env -binary NAME] < terraform-output.json")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q: the output JSON is read from standard input", fs.Args())
	}
	switch *format {
	case "env":
		if *binary == "" {
			return fmt.Errorf("-format env needs -binary (%s)", strings.Join(tfout.Binaries, ", "))
		}
		if *out != "" {
			return fmt.Errorf("-out is for -format kustomize; -format env writes to standard output")
		}
	case "kustomize":
		if *binary != "" {
			return fmt.Errorf("-binary is for -format env; the component holds every deployed binary")
		}
	default:
		return fmt.Errorf("unknown -format %q (want kustomize or env)", *format)
	}
	o, err := tfout.Parse(bufio.NewReader(stdin))
	if err != nil {
		return err
	}
	if *format == "env" {
		return o.WriteEnv(stdout, *binary)
	}
	dir := *out
	if dir == "" {
		dir = filepath.Join(overlays, o.Runtime, "terraform")
	}
	if err := o.WriteComponent(dir); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote the kustomize component of runtime %s to %s\n", o.Runtime, dir)
	return nil
}
