package devstack

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// Where the stand-ins live. Each can be overridden by an environment variable, for machines
// where they are installed somewhere else.
const (
	envFauxqsDir   = "DEVSTACK_FAUXQS_DIR"         // folder holding serve.mjs and node_modules
	envPubSubBin   = "DEVSTACK_PUBSUB_EMULATOR"    // cloud-pubsub-emulator start script
	envFirestoreJa = "DEVSTACK_FIRESTORE_EMULATOR" // cloud-firestore-emulator.jar
)

func needCommand(name, hint string) (string, error) {
	path, err := exec.LookPath(name)
	if err != nil {
		return "", &MissingError{What: name, Hint: hint}
	}
	return path, nil
}

// fauxqsDir finds the project's pinned fauxqs install.
func fauxqsDir() (string, error) {
	dir := os.Getenv(envFauxqsDir)
	if dir == "" {
		root, err := RepoRoot()
		if err != nil {
			return "", &MissingError{What: "fauxqs", Hint: "run from inside the project checkout or set " + envFauxqsDir}
		}
		dir = filepath.Join(root, "devstack", "fauxqs")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "fauxqs", "package.json")); err != nil {
		return "", &MissingError{What: "fauxqs (the SQS stand-in)", Hint: "run `make deps` (npm ci in " + dir + ")"}
	}
	return dir, nil
}

// startSQS starts fauxqs bound to 127.0.0.1. Port 0 lets it pick a free port itself.
func startSQS(ctx context.Context, logDir string, port int) (*process, string, error) {
	node, err := needCommand("node", "install Node.js 20 or newer (apt-get install nodejs)")
	if err != nil {
		return nil, "", err
	}
	dir, err := fauxqsDir()
	if err != nil {
		return nil, "", err
	}
	p, err := startProcess("fauxqs", filepath.Join(logDir, "sqs.log"), nil,
		node, filepath.Join(dir, "serve.mjs"), strconv.Itoa(port))
	if err != nil {
		return nil, "", err
	}
	url, err := waitLogLine(ctx, p, fauxqsListening)
	if err != nil {
		p.stop(stopGrace)
		return nil, "", err
	}
	return p, url, nil
}

// locate finds an installed file: the override in envVar, else where the Debian package pkg
// put a file ending in suffix, else the usual path. what and pkg name it in the error.
func locate(what, envVar, pkg, suffix, usual string) (string, error) {
	path, ok := findFile(os.Getenv(envVar), dpkgFile(pkg, suffix), usual)
	if !ok {
		return "", &MissingError{What: what,
			Hint: "install the Debian package " + pkg + ", or set " + envVar + " to its " + suffix[strings.LastIndex(suffix, "/")+1:]}
	}
	return path, nil
}

func pubsubEmulatorPath() (string, error) {
	return locate("Pub/Sub emulator", envPubSubBin, "google-cloud-cli-pubsub-emulator",
		"/pubsub-emulator/bin/cloud-pubsub-emulator",
		"/usr/lib/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator")
}

func firestoreJarPath() (string, error) {
	return locate("Firestore emulator", envFirestoreJa, "google-cloud-cli-firestore-emulator",
		"/cloud-firestore-emulator.jar",
		"/usr/lib/google-cloud-sdk/platform/cloud-firestore-emulator/cloud-firestore-emulator.jar")
}

const javaHint = "install a Java 17+ runtime (apt-get install openjdk-17-jre-headless)"

// startPubSub starts Google's Pub/Sub emulator on 127.0.0.1:port. The start script execs
// java, so the process group holds the JVM itself.
func startPubSub(ctx context.Context, logDir string, port int, project string) (*process, string, error) {
	if _, err := needCommand("java", javaHint); err != nil {
		return nil, "", err
	}
	bin, err := pubsubEmulatorPath()
	if err != nil {
		return nil, "", err
	}
	return startEmulator(ctx, "Pub/Sub emulator", filepath.Join(logDir, "pubsub.log"), port,
		bin, "--host=127.0.0.1", "--port="+strconv.Itoa(port), "--projects="+project)
}

// startFirestore starts Google's Firestore emulator on 127.0.0.1:port, logging to logName in
// logDir, with the data of an export when importPath names its .overall_export_metadata
// file. It runs the JVM directly rather than through the wrapper script, so no Java child
// outlives a stop.
func startFirestore(ctx context.Context, logDir, logName string, port int, project, importPath string) (*process, string, error) {
	java, err := needCommand("java", javaHint)
	if err != nil {
		return nil, "", err
	}
	jar, err := firestoreJarPath()
	if err != nil {
		return nil, "", err
	}
	args := []string{java, "-Duser.language=en", "-cp", jar, "com.google.cloud.datastore.emulator.firestore.CloudFirestore",
		"start", "--host=127.0.0.1", "--port=" + strconv.Itoa(port), "--project_id=" + project}
	if importPath != "" {
		args = append(args, "--import-data="+importPath)
	}
	return startEmulator(ctx, "Firestore emulator", filepath.Join(logDir, logName), port, args...)
}

// startEmulator starts argv as the emulator name, logging to logPath, and waits until it
// answers HTTP on 127.0.0.1:port; it returns the process and that host:port. A process that
// never answers is stopped.
func startEmulator(ctx context.Context, name, logPath string, port int, argv ...string) (*process, string, error) {
	host := fmt.Sprintf("127.0.0.1:%d", port)
	p, err := startProcess(name, logPath, nil, argv...)
	if err != nil {
		return nil, "", err
	}
	if err := waitHTTP(ctx, p, "http://"+host+"/"); err != nil {
		p.stop(stopGrace)
		return nil, "", err
	}
	return p, host, nil
}
