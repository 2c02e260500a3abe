package tfout

import (
	"bytes"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"

	"sigs.k8s.io/yaml"
)

// What WriteComponent patches: the names of deploy/k8s/base, which the overlays build on. A
// name that drifts makes kustomize fail to find the patch's target.
const (
	// Prefix names every object of deploy/k8s: Deployment, container's ConfigMap and
	// ServiceAccount of a binary are Prefix-BINARY (the container is named BINARY).
	Prefix = "imgpipe"
	// CredentialsKey is the key of the external_account configuration in a binary's Google
	// credentials ConfigMap, Prefix-BINARY-google.
	CredentialsKey = "credentials.json"
	// VisionSecret is the Secret holding the Vision key (key "key"), created by the operator.
	VisionSecret = Prefix + "-vision"
	// AWSAudience is the audience of a projected token AWS STS exchanges
	// (AssumeRoleWithWebIdentity), as the roles' trust policies require.
	AWSAudience = "sts.amazonaws.com"
	// AzureAudience is the audience of a projected token Entra ID exchanges, as the
	// analyzer's federated identity credential requires.
	AzureAudience = "api://AzureADTokenExchange"
	// analyzerTriggers and indexerTriggers are the ScaledObjects of the two Deployments;
	// awsAuthentication is the analyzer trigger's TriggerAuthentication, gcpAuthentication the
	// GKE overlay's for Managed Service for Prometheus.
	analyzerTriggers  = Prefix + "-analyzer"
	indexerTriggers   = Prefix + "-indexer"
	awsAuthentication = Prefix + "-aws"
	gcpAuthentication = Prefix + "-gcp"
)

// Deployed are the binaries deploy/k8s runs as Deployments; the component gives each its
// settings, credential files and identity. (The operator CLIs run from a workstation: their
// settings are WriteEnv's.)
var Deployed = []string{"analyzer", "console", "indexer"}

// GoogleConfigMap is the ConfigMap holding bin's external_account configuration.
func GoogleConfigMap(bin string) string { return Prefix + "-" + bin + "-google" }

// Mount is a file a setting names, and what the pod mounts there.
type Mount struct {
	Setting  string // the environment variable naming the file
	Volume   string // the volume's name
	Audience string // a projected service account token's audience; "" for other volumes
}

// Mounts are the credential files a binary's settings can name, and how each is mounted.
var Mounts = []Mount{
	{Setting: "AWS_WEB_IDENTITY_TOKEN_FILE", Volume: "aws-token", Audience: AWSAudience},
	{Setting: "AZURE_FEDERATED_TOKEN_FILE", Volume: "azure-token", Audience: AzureAudience},
	{Setting: "GOOGLE_APPLICATION_CREDENTIALS", Volume: "google-credentials"},
	{Setting: "AZURE_VISION_KEY_FILE", Volume: "vision-key"},
}

// tokenSeconds is the lifetime of the projected tokens; the kubelet renews them at 80%.
const tokenSeconds = 3600

// generated matches the files WriteComponent writes, so that a second run removes those the
// first wrote and it does not.
var generated = regexp.MustCompile(`^(kustomization\.yaml|[a-z-]+\.env|[a-z-]+-google\.json|serviceaccounts\.yaml|deployments\.yaml|keda\.yaml|[a-z]+-trigger\.yaml)$`)

// WriteComponent writes into dir the kustomize component that gives the deploy/k8s overlay of
// o's runtime this deployment's values: each deployed binary's settings merged into its
// ConfigMap, the Google credential files as ConfigMaps, every credential file a setting names
// mounted where it says (projected tokens with the audience their cloud's trust requires, the
// Google configuration, the Vision key Secret), the service accounts' annotations, KEDA's role
// and region for the analyzer's trigger, and on GKE the indexer's trigger on the
// subscription's backlog. Files a previous run wrote and this one does not are removed.
func (o *Outputs) WriteComponent(dir string) error {
	files, err := o.component()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("component folder: %w", err)
	}
	old, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("component folder: %w", err)
	}
	for _, e := range old {
		if _, keep := files[e.Name()]; !keep && e.Type().IsRegular() && generated.MatchString(e.Name()) {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				return fmt.Errorf("remove the stale %s: %w", e.Name(), err)
			}
		}
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), content, 0o644); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
	}
	return nil
}

type obj = map[string]any

// component returns the component's files by name.
func (o *Outputs) component() (map[string][]byte, error) {
	files := map[string][]byte{}
	var generators, patches []any
	var accounts, deployments []obj
	for _, bin := range Deployed {
		name := Prefix + "-" + bin
		var env bytes.Buffer
		if err := o.WriteEnv(&env, bin); err != nil {
			return nil, err
		}
		files[bin+".env"] = env.Bytes()
		generators = append(generators, obj{"name": name, "behavior": "merge", "envs": []string{bin + ".env"}})
		if cfg, ok := o.GoogleCredentials[bin]; ok {
			files[bin+"-google.json"] = []byte(cfg + "\n")
			generators = append(generators, obj{"name": GoogleConfigMap(bin), "files": []string{CredentialsKey + "=" + bin + "-google.json"}})
		}

		sa, ok := o.ServiceAccounts[bin]
		if !ok {
			return nil, fmt.Errorf("output kubernetes_service_accounts has no %s", bin)
		}
		if sa.Name != name {
			return nil, fmt.Errorf("output kubernetes_service_accounts: %s is %s, but deploy/k8s runs it as %s (set kubernetes_service_accounts back to the manifests' names)", bin, sa.Name, name)
		}
		if as := o.Annotations[bin]; len(as) > 0 {
			accounts = append(accounts, obj{"apiVersion": "v1", "kind": "ServiceAccount",
				"metadata": obj{"name": sa.Name, "namespace": sa.Namespace, "annotations": as}})
		}

		vols, mounts, err := o.volumes(bin)
		if err != nil {
			return nil, err
		}
		if len(vols) > 0 {
			deployments = append(deployments, obj{"apiVersion": "apps/v1", "kind": "Deployment",
				"metadata": obj{"name": name, "namespace": sa.Namespace},
				"spec": obj{"template": obj{"spec": obj{
					"containers": []obj{{"name": bin, "volumeMounts": mounts}},
					"volumes":    vols,
				}}}})
		}
	}
	ns := o.ServiceAccounts["analyzer"].Namespace
	for _, p := range []struct {
		file string
		docs []obj
	}{{"serviceaccounts.yaml", accounts}, {"deployments.yaml", deployments}} {
		if len(p.docs) == 0 {
			continue
		}
		b, err := yamlStream(p.docs)
		if err != nil {
			return nil, err
		}
		files[p.file] = b
		patches = append(patches, obj{"path": p.file})
	}

	// KEDA: the analyzer's trigger reads the queue in its region (KEDA does not read the
	// pod's AWS_REGION) with KEDA's own role.
	region := o.Settings["analyzer"]["AWS_REGION"]
	if region == "" {
		return nil, fmt.Errorf("output analyzer_settings has no AWS_REGION, which the analyzer's KEDA trigger needs")
	}
	b, err := yamlStream([]obj{{"apiVersion": "keda.sh/v1alpha1", "kind": "TriggerAuthentication",
		"metadata": obj{"name": awsAuthentication, "namespace": ns},
		"spec":     obj{"podIdentity": obj{"provider": "aws", "roleArn": o.KEDARoleARN}}}})
	if err != nil {
		return nil, err
	}
	files["keda.yaml"] = b
	patches = append(patches, obj{"path": "keda.yaml"})
	if err := jsonPatch(files, &patches, "analyzer-trigger.yaml", analyzerTriggers,
		obj{"op": "replace", "path": "/spec/triggers/0/metadata/awsRegion", "value": region}); err != nil {
		return nil, err
	}
	if o.Runtime == "gke" {
		trigger, err := o.backlogTrigger()
		if err != nil {
			return nil, err
		}
		if err := jsonPatch(files, &patches, "indexer-trigger.yaml", indexerTriggers,
			obj{"op": "add", "path": "/spec/triggers/-", "value": trigger}); err != nil {
			return nil, err
		}
	}

	k, err := yaml.Marshal(obj{"apiVersion": "kustomize.config.k8s.io/v1alpha1", "kind": "Component",
		"configMapGenerator": generators, "patches": patches})
	if err != nil {
		return nil, err
	}
	files["kustomization.yaml"] = append([]byte(fmt.Sprintf(`# Generated by make tf-env (deploy/internal/tfout) from terraform output -json of
# deploy/terraform, runtime %s: this deployment's settings, credential files and identities.
# Do not edit: change the Terraform's variables, apply, and run make tf-env again.
`, o.Runtime)), k...)
	return files, nil
}

// volumes are the volumes and mounts of the credential files bin's settings name.
func (o *Outputs) volumes(bin string) (vols, mounts []obj, err error) {
	env := o.Settings[bin]
	dirs := map[string]string{}
	for _, m := range Mounts {
		file, ok := env[m.Setting]
		if !ok {
			continue
		}
		if !path.IsAbs(file) || path.Clean(file) != file || path.Dir(file) == "/" {
			return nil, nil, fmt.Errorf("output %s_settings: %s %q is not a file in a folder of its own", strings.ReplaceAll(bin, "-", "_"), m.Setting, file)
		}
		dir, base := path.Dir(file), path.Base(file)
		if other, dup := dirs[dir]; dup {
			return nil, nil, fmt.Errorf("output %s_settings: %s and %s are both in %s, which one volume takes", strings.ReplaceAll(bin, "-", "_"), other, m.Setting, dir)
		}
		dirs[dir] = m.Setting
		var src obj
		switch {
		case m.Audience != "":
			src = obj{"projected": obj{"sources": []obj{{"serviceAccountToken": obj{"audience": m.Audience, "expirationSeconds": tokenSeconds, "path": base}}}}}
		case m.Setting == "GOOGLE_APPLICATION_CREDENTIALS":
			if _, ok := o.GoogleCredentials[bin]; !ok {
				return nil, nil, fmt.Errorf("output %s_settings names %s, but google_credentials has no configuration for %s", strings.ReplaceAll(bin, "-", "_"), m.Setting, bin)
			}
			src = obj{"configMap": obj{"name": GoogleConfigMap(bin), "items": []obj{{"key": CredentialsKey, "path": base}}}}
		default: // the Vision key
			src = obj{"secret": obj{"secretName": VisionSecret, "defaultMode": 0o440, "items": []obj{{"key": "key", "path": base}}}}
		}
		src["name"] = m.Volume
		vols = append(vols, src)
		mounts = append(mounts, obj{"name": m.Volume, "mountPath": dir, "readOnly": true})
	}
	return vols, mounts, nil
}

var (
	projectID      = regexp.MustCompile(`^[a-z][a-z0-9-]{4,28}[a-z0-9]$`)
	subscriptionID = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9._~+%-]{2,254}$`)
)

// backlogTrigger is the GKE indexer's second KEDA trigger: the subscription's backlog, read
// from Google Cloud Managed Service for Prometheus with KEDA's own Google identity.
func (o *Outputs) backlogTrigger() (obj, error) {
	env := o.Settings["indexer"]
	project := env["GOOGLE_CLOUD_PROJECT"]
	sub := env["IMGPIPE_SUBSCRIPTION"]
	sub = sub[strings.LastIndex(sub, "/")+1:] // an ID or a full name
	if !projectID.MatchString(project) || !subscriptionID.MatchString(sub) {
		return nil, fmt.Errorf("output indexer_settings: project %q or subscription %q is not a Google Cloud ID", project, sub)
	}
	return obj{
		"type": "prometheus", "name": "subscription-backlog", "authenticationRef": obj{"name": gcpAuthentication},
		"metadata": obj{
			"serverAddress":    "https://monitoring.googleapis.com/v1/projects/" + project + "/location/global/prometheus",
			"query":            `sum(pubsub_googleapis_com:subscription_num_undelivered_messages{monitored_resource="pubsub_subscription",subscription_id="` + sub + `"}) or vector(0)`,
			"threshold":        "2000",
			"ignoreNullValues": "false",
		},
	}, nil
}

// jsonPatch adds file, a JSON patch of the ScaledObject target, to the component.
func jsonPatch(files map[string][]byte, patches *[]any, file, target string, ops ...obj) error {
	b, err := yaml.Marshal(ops)
	if err != nil {
		return err
	}
	files[file] = b
	*patches = append(*patches, obj{"path": file, "target": obj{"kind": "ScaledObject", "name": target}})
	return nil
}

func yamlStream(docs []obj) ([]byte, error) {
	var out [][]byte
	for _, d := range docs {
		b, err := yaml.Marshal(d)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return bytes.Join(out, []byte("---\n")), nil
}
