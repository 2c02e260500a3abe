// Command envfile turns `terraform output -json` of deploy/terraform into the binaries'
// settings: an env file for one binary, or the Kubernetes ConfigMaps the manifests read.
//
//	terraform -chdir=deploy/terraform output -json > out.json
//	cd deploy && go run ./terraform/envfile -binary analyzer < ../out.json > analyzer.env
//	cd deploy && go run ./terraform/envfile -format configmap < ../out.json > configmaps.yaml
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"

	"imgpipe/deploy/internal/tfout"
)

func main() {
	if err := run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "envfile: %v\n", err)
		os.Exit(2)
	}
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("envfile", flag.ContinueOnError)
	fs.SetOutput(stderr)
	format := fs.String("format", "env", "env (KEY=value lines of one binary) or configmap (YAML of every binary's ConfigMaps)")
	binary := fs.String("binary", "", "with -format env: analyzer, indexer, uploader or dlq-replay")
	prefix := fs.String("prefix", "imgpipe", "with -format configmap: ConfigMap names are PREFIX-BINARY and PREFIX-BINARY-google")
	namespace := fs.String("namespace", "imgpipe", "with -format configmap: namespace of the ConfigMaps")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: envfile [-format env -binary NAME | -format configmap] < terraform-output.json")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q: the output JSON is read from standard input", fs.Args())
	}
	out, err := tfout.Parse(bufio.NewReader(stdin))
	if err != nil {
		return err
	}
	switch *format {
	case "env":
		if *binary == "" {
			return fmt.Errorf("-format env needs -binary (analyzer, indexer, uploader or dlq-replay)")
		}
		return out.WriteEnv(stdout, *binary)
	case "configmap":
		return out.WriteConfigMaps(stdout, *prefix, *namespace)
	}
	return fmt.Errorf("unknown -format %q (want env or configmap)", *format)
}
