package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/chromedp/cdproto/accessibility"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"imgpipe/internal/stacktest"
	"imgpipe/pkg/console"
	"imgpipe/pkg/samples"
)

// chromiumFlags are the flags Chromium needs on these machines (no GPU, no sandbox as root,
// and no background connections, which the closed network refuses).
var chromiumFlags = []chromedp.ExecAllocatorOption{
	chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
	chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
	chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
	chromedp.Flag("disable-dev-shm-usage", true), chromedp.WindowSize(1280, 900),
}

// browserPrereqs finds Debian's Chromium and the pinned axe-core; outside CI a missing one
// skips the test with what to install, in CI it fails it.
func browserPrereqs(t *testing.T) (chromium, axe string) {
	t.Helper()
	missing := func(what string) {
		if stacktest.InCI() {
			t.Fatalf("browser test prerequisite missing in CI: %s", what)
		}
		t.Skipf("browser test skipped: %s", what)
	}
	chromium = os.Getenv("CHROMIUM")
	if chromium == "" {
		for _, c := range []string{"chromium", "chromium-browser"} {
			if p, err := exec.LookPath(c); err == nil {
				chromium = p
				break
			}
		}
	}
	if chromium == "" {
		missing("no chromium on PATH (make tools installs Debian's chromium)")
	}
	axe = filepath.Join("browser", "node_modules", "axe-core", "axe.min.js")
	if _, err := os.Stat(axe); err != nil {
		missing("axe-core not installed (make browser-deps)")
	}
	return chromium, axe
}

// pageErrors collects script errors and CSP violations from the first script of every page.
const pageErrors = `window.__consoleTestErrors = [];
addEventListener("error", (e) => __consoleTestErrors.push("error: " + (e.message || (e.target && e.target.src) || e.type)), true);
addEventListener("unhandledrejection", (e) => __consoleTestErrors.push("rejection: " + e.reason));
addEventListener("securitypolicyviolation", (e) => __consoleTestErrors.push("CSP " + e.violatedDirective + " " + e.blockedURI));`

// TestConsoleInBrowser drives the console's page in headless Chromium on the whole local
// stack (analyzer and indexer running): drop images and a bad file, watch them end indexed
// with their tags or failed with the reason, search by a tag, open one with the keyboard,
// read the pipeline panel; checked for accessibility (axe-core's WCAG 2.1 A/AA rules,
// Chromium's accessibility tree, focus order, keyboard use), script errors and CSP
// violations. Screenshots go to the test's artifact directory (printed).
func TestConsoleInBrowser(t *testing.T) {
	chromium, axePath := browserPrereqs(t)
	axeSource, err := os.ReadFile(axePath)
	if err != nil {
		t.Fatal(err)
	}
	log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	p := startPipeline(t, log)
	ctx := context.Background()
	ps, err := pubsub.NewClient(ctx, p.st.ProjectID)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ps.Close() })
	srv, err := console.New(p.res.Bucket, console.Deps{S3: p.s3, Index: p.store, SQS: p.sqs, PubSub: ps.SubscriptionAdminClient}, &console.Options{
		Prefix: p.res.Prefix, QueueURL: p.res.QueueURL, DLQURL: p.res.DLQURL, DeadLetterSubscription: p.res.DeadLetterSubscriptionName,
		DLQRefresh: 2 * time.Second, Logger: log.Named("console"),
	})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	if err := console.AllowUploads(ctx, p.s3, p.res.Bucket, ts.URL); err != nil {
		t.Fatal(err)
	}

	// The files: good samples, a text file named .jpg, and an image whose name is markup.
	dir := t.TempDir()
	all, err := samples.Generate(dir)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]samples.Sample{}
	for _, s := range all {
		byName[s.Name] = s
	}
	good := []string{"sunset-gradient.jpg", "ocean.png", "forest.gif"}
	bad := "not-an-image.jpg"
	const markup = `<img src=x onerror="window.pwned=1">.png`
	markupData, err := os.ReadFile(byName["ocean.png"].Path(dir))
	if err != nil {
		t.Fatal(err)
	}
	// A distinct copy (another pixel value) so that the key and the analysis are its own.
	markupData = append(markupData, 0)
	if err := os.WriteFile(filepath.Join(dir, markup), markupData, 0o644); err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, n := range append(slices.Clone(good), bad) {
		paths = append(paths, byName[n].Path(dir))
	}
	paths = append(paths, filepath.Join(dir, markup))

	shots := t.ArtifactDir()
	fmt.Fprintf(os.Stderr, "TestConsoleInBrowser: screenshots in %s\n", shots)
	t.Logf("screenshots in %s", shots)

	opts := append(slices.Clone(chromiumFlags), chromedp.ExecPath(chromium), chromedp.UserDataDir(t.TempDir()))
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	bctx, cancel := context.WithTimeout(bctx, 6*time.Minute)
	defer cancel()

	do := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(bctx, actions...); err != nil {
			shot(t, bctx, shots, "failed")
			t.Fatalf("%s: %v", what, err)
		}
	}
	eval := func(what, js string, out any) {
		t.Helper()
		raw, err := chromedp.Run(bctx, chromedp.Evaluate[[]byte](js, chromedp.EvalAwaitPromise))
		if err == nil {
			err = json.Unmarshal(raw, out)
		}
		if err != nil {
			shot(t, bctx, shots, "failed")
			t.Fatalf("%s: %v", what, err)
		}
	}
	poll := func(what, js string, timeout time.Duration) {
		t.Helper()
		if _, err := chromedp.Run(bctx, chromedp.Poll[chromedp.Void](js, chromedp.WithPollingInterval(200*time.Millisecond), chromedp.WithPollingTimeout(timeout))); err != nil {
			shot(t, bctx, shots, "failed")
			var state string
			eval("page state", `document.querySelector("main").innerText`, &state)
			t.Fatalf("waiting for %s: %v\npage text:\n%s", what, err, state)
		}
	}

	if _, err := chromedp.Call(bctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: pageErrors}); err != nil {
		t.Fatal(err)
	}
	do("open the console", chromedp.Navigate(ts.URL+"/"), chromedp.WaitVisible(chromedp.CSS("#files")))
	poll("the pipeline panel", `document.querySelector("#pipeline-body table") !== null`, 30*time.Second)
	shot(t, bctx, shots, "01-empty")

	t.Run("accessibility", func(t *testing.T) {
		checkAxe(t, bctx, string(axeSource))
		checkNames(t, bctx)
		// Focus order from the top: skip link, search, upload.
		var order []string
		eval("blur", `document.activeElement.blur(), true`, new(bool))
		for range 4 {
			do("Tab", chromedp.KeyEvent(kb.Tab))
			var d string
			eval("focused element", `(e => e.id || e.className || e.tagName)(document.activeElement)`, &d)
			order = append(order, d)
		}
		if want := []string{"skip", "tag", "search-button", "files"}; !slices.Equal(order, want) {
			t.Errorf("focus order %v, want %v", order, want)
		}
		// The skip link works from the keyboard.
		do("focus the skip link", chromedp.Focus(chromedp.CSS("a.skip")), chromedp.KeyEvent(kb.Enter))
		poll("focus on the gallery heading", `document.activeElement.id === "gallery-heading"`, 5*time.Second)
	})

	// Drop the files on the drop zone, as a user drags them from a file manager.
	var box struct{ X, Y float64 }
	eval("drop zone", `(r => ({X: r.x + r.width / 2, Y: r.y + r.height / 2}))(document.getElementById("dropzone").getBoundingClientRect())`, &box)
	data := &input.DragData{Files: paths, DragOperationsMask: 1}
	for _, typ := range []input.DispatchDragEventType{input.DispatchDragEventTypeDragEnter, input.DispatchDragEventTypeDragOver, input.DispatchDragEventTypeDrop} {
		if _, err := chromedp.Call(bctx, input.DispatchDragEvent, input.DispatchDragEventParams{Type: typ, X: box.X, Y: box.Y, Data: data}); err != nil {
			t.Fatalf("drag %s: %v", typ, err)
		}
	}
	poll("an upload row per dropped file", fmt.Sprintf(`document.querySelectorAll("#uploads li").length === %d`, len(paths)), 15*time.Second)
	shot(t, bctx, shots, "02-uploading")
	poll("every upload indexed or failed", fmt.Sprintf(`document.querySelectorAll("#uploads li.indexed, #uploads li.failed").length === %d`, len(paths)), 3*time.Minute)
	shot(t, bctx, shots, "03-uploaded")

	var rows []struct{ Name, Class, State string }
	eval("upload rows", `[...document.querySelectorAll("#uploads li")].map(li => ({Name: li.querySelector(".name").textContent, Class: li.className, State: li.querySelector(".state").textContent}))`, &rows)
	for _, r := range rows {
		switch {
		case r.Name == bad:
			if r.Class != "failed" || !strings.Contains(r.State, "failed: NotAnImage") {
				t.Errorf("%s: %s %q, want failed with reason NotAnImage", r.Name, r.Class, r.State)
			}
		case r.Class != "indexed" || !strings.HasPrefix(r.State, "indexed: "):
			t.Errorf("%s: %s %q, want indexed with its tags", r.Name, r.Class, r.State)
		}
	}

	// The gallery shows the indexed images with their tags; the markup name is only text.
	type cardInfo struct {
		Name string
		Tags []string
	}
	var cards []cardInfo
	readCards := func() {
		eval("gallery", `[...document.querySelectorAll("#gallery .card")].map(c => ({Name: c.querySelector(".open").textContent, Tags: [...c.querySelectorAll(".tags button")].map(b => b.textContent)}))`, &cards)
	}
	readCards()
	tagsOf := map[string][]string{}
	for _, c := range cards {
		tagsOf[c.Name] = c.Tags
	}
	for _, n := range append(slices.Clone(good), markup) {
		if len(tagsOf[n]) == 0 {
			t.Errorf("gallery has no card with tags for %s: %+v", n, cards)
		}
	}
	if _, ok := tagsOf[bad]; ok {
		t.Errorf("the bad file is in the gallery: %+v", cards)
	}
	// Every good image's card shows its real thumbnail (a JPEG the analyzer wrote under
	// thumbnail/, fetched from S3 with its presigned URL), not the placeholder.
	poll("the thumbnails loaded", fmt.Sprintf(`[...document.querySelectorAll("#gallery .card img.thumb")].filter(i => i.src.includes("/thumbnail/") && i.complete && i.naturalWidth > 0 && i.naturalWidth <= 320 && i.naturalHeight <= 320).length === %d`, len(good)+1), 30*time.Second)
	var sunsetThumb struct{ W, H int }
	eval("the sunset's thumbnail", `(c => ({W: c.naturalWidth, H: c.naturalHeight}))([...document.querySelectorAll("#gallery .card")].find(c => c.querySelector(".open").textContent === "sunset-gradient.jpg").querySelector("img.thumb"))`, &sunsetThumb)
	if sunsetThumb.W != 320 || sunsetThumb.H != 180 {
		t.Errorf("the sunset's thumbnail is %dx%d, want 320x180 (1280x720 scaled)", sunsetThumb.W, sunsetThumb.H)
	}
	// The forest's thumbnail, read while the gallery shows every image (it is removed from S3
	// below).
	const forest = `[...document.querySelectorAll("#gallery .card")].find(c => c.querySelector(".open").textContent === "forest.gif").querySelector("img.thumb")`
	var forestThumb string
	eval("the forest's thumbnail", forest+`.src`, &forestThumb)
	var pwned bool
	eval("markup ran?", `window.pwned === 1`, &pwned)
	if pwned {
		t.Error("a file name was run as markup")
	}

	// Search by a tag of the sunset that not every image has, typed and sent with Enter.
	tag := ""
	for _, tg := range tagsOf["sunset-gradient.jpg"] {
		count := 0
		for _, c := range cards {
			if slices.Contains(c.Tags, tg) {
				count++
			}
		}
		if count < len(cards) {
			tag = tg
			break
		}
	}
	if tag == "" {
		t.Fatalf("every image shares every tag of the sunset: %+v", cards)
	}
	do("search", chromedp.Focus(chromedp.CSS("#tag")), chromedp.SendKeys(chromedp.CSS("#tag"), tag+kb.Enter))
	poll("the search result", fmt.Sprintf(`document.getElementById("gallery-heading").textContent === %q && document.activeElement.id === "gallery-heading"`, "Images tagged “"+tag+"”"), 20*time.Second)
	readCards()
	if len(cards) == 0 || len(cards) >= len(tagsOf) {
		t.Errorf("search for %q shows %d of %d images", tag, len(cards), len(tagsOf))
	}
	for _, c := range cards {
		if !slices.Contains(c.Tags, tag) {
			t.Errorf("search for %q shows %s tagged %v", tag, c.Name, c.Tags)
		}
	}
	shot(t, bctx, shots, "04-search")

	// Open the sunset with the keyboard; the detail shows the image itself, fetched from S3
	// with its presigned URL; Escape closes it and gives the focus back.
	sel := `[...document.querySelectorAll("#gallery .card .open")].find(b => b.textContent === "sunset-gradient.jpg")`
	eval("focus the sunset", sel+`.focus(), document.activeElement.textContent`, new(string))
	do("open with Enter", chromedp.KeyEvent(kb.Enter))
	poll("the detail dialog with the picture", `document.getElementById("detail").open && (i => i && i.complete && i.naturalWidth === 1280)(document.querySelector("#detail-body img"))`, 20*time.Second)
	var detail string
	eval("detail text", `document.getElementById("detail").innerText`, &detail)
	// The sunset's EXIF, as the sample wrote it: camera, time, orientation and GPS position.
	for _, want := range []string{"sunset-gradient.jpg", "1280 × 720 pixels", "JPEG", tag,
		"imgpipe SampleCam S1", "2024-07-14T21:42:07", "43.48389, -1.55833"} {
		if !strings.Contains(detail, want) {
			t.Errorf("detail lacks %q:\n%s", want, detail)
		}
	}
	var focusInDialog bool
	eval("focus in the dialog", `document.getElementById("detail").contains(document.activeElement)`, &focusInDialog)
	if !focusInDialog {
		t.Error("opening the detail did not move the focus into it")
	}
	shot(t, bctx, shots, "05-detail")
	// The check runs after every close handler of the page has run (a task after the event).
	eval("watch the close", `document.getElementById("detail").addEventListener("close", () => setTimeout(() => { window.__detailClosed = true }), {once: true}), true`, new(bool))
	do("close with Escape", chromedp.KeyEvent(kb.Escape))
	poll("the dialog closed and the focus back on the card", `window.__detailClosed && !document.getElementById("detail").open && document.activeElement.textContent === "sunset-gradient.jpg"`, 5*time.Second)

	// The pipeline panel names the bad file's reason among the dead letters.
	poll("the dead letters by reason", `document.getElementById("pipeline-body").innerText.includes("NotAnImage")`, 30*time.Second)
	shot(t, bctx, shots, "06-pipeline")
	// The forest's thumbnail goes from S3 while the index still names it (as when a newer
	// version's record was published and not yet indexed): its card shows the placeholder, as
	// an image without a thumbnail does, not a broken image.
	thumbKey := thumbnailKey(t, forestThumb, p.res.Bucket)
	if _, err := p.s3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(p.res.Bucket), Key: aws.String(thumbKey)}); err != nil {
		t.Fatalf("remove the forest's thumbnail: %v", err)
	}
	t.Run("accessibility after use", func(t *testing.T) {
		do("show all", chromedp.Click(chromedp.CSS("#clear-search")))
		poll("every image", `document.getElementById("gallery-heading").textContent === "Images"`, 10*time.Second)
		poll("the placeholder for the removed thumbnail", `(i => i.src.endsWith("/assets/placeholder.svg") && i.alt === "" && i.complete && i.naturalWidth > 0)(`+forest+`)`, 20*time.Second)
		shot(t, bctx, shots, "07-removed-thumbnail")
		checkAxe(t, bctx, string(axeSource))
		checkNames(t, bctx)
	})

	// The page's errors but the one expected: the removed thumbnail's failed load.
	pageErrs := func() []string {
		var errs []string
		eval("page errors", `window.__consoleTestErrors`, &errs)
		return slices.DeleteFunc(errs, func(e string) bool {
			src, ok := strings.CutPrefix(e, "error: ")
			u, err := url.Parse(src)
			return ok && err == nil && u.Path == "/"+p.res.Bucket+"/"+thumbKey
		})
	}
	if errs := pageErrs(); len(errs) > 0 {
		t.Errorf("the page had errors or CSP violations: %q", errs)
	}

	// A console that needs a token: the page asks for it, refuses a wrong one and works with
	// the right one, all from the keyboard.
	t.Run("token sign-in", func(t *testing.T) {
		const token = "browser-test-token-0123456789"
		guarded, err := console.New(p.res.Bucket, console.Deps{S3: p.s3, Index: p.store}, &console.Options{
			Prefix: p.res.Prefix, Auth: console.Auth{Tokens: []string{token}}, Logger: log.Named("console"),
		})
		if err != nil {
			t.Fatal(err)
		}
		gs := httptest.NewServer(guarded)
		defer gs.Close()
		do("open the guarded console", chromedp.Navigate(gs.URL+"/"))
		poll("the sign-in dialog with the focus in it", `document.getElementById("login").open && document.activeElement.id === "token"`, 10*time.Second)
		checkAxe(t, bctx, string(axeSource))
		do("a wrong token", chromedp.SendKeys(chromedp.CSS("#token"), "not-the-token-0123456789"+kb.Enter))
		poll("the refusal", `document.getElementById("login").open && document.getElementById("login-error").textContent.includes("not valid")`, 10*time.Second)
		do("the token", chromedp.SendKeys(chromedp.CSS("#token"), token+kb.Enter))
		poll("the console signed in", `!document.getElementById("login").open && document.getElementById("limits").textContent.includes("Images up to")`, 10*time.Second)
		shot(t, bctx, shots, "08-signed-in")
		if errs := pageErrs(); len(errs) > 0 {
			t.Errorf("the page had errors or CSP violations: %q", errs)
		}
	})
}

// thumbnailKey is the S3 key of a thumbnail's presigned (path-style) URL.
func thumbnailKey(t *testing.T, presigned, bucket string) string {
	t.Helper()
	u, err := url.Parse(presigned)
	if err != nil {
		t.Fatalf("thumbnail URL %q: %v", presigned, err)
	}
	key, ok := strings.CutPrefix(u.Path, "/"+bucket+"/")
	if !ok || !strings.Contains(key, "thumbnail/") {
		t.Fatalf("thumbnail URL %q names no thumbnail of bucket %s", presigned, bucket)
	}
	return key
}

// checkAxe runs axe-core's WCAG 2.0/2.1 A and AA rules on the page.
func checkAxe(t *testing.T, ctx context.Context, axe string) {
	t.Helper()
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](axe)); err != nil {
		t.Fatalf("load axe-core: %v", err)
	}
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](`axe.run(document, {runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}})
		.then(r => ({passes: r.passes.length, violations: r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(n => n.target.join(" "))}))}))`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("run axe-core: %v", err)
	}
	var res struct {
		Passes     int
		Violations []struct {
			ID, Impact, Help string
			Nodes            []string
		}
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		t.Fatal(err)
	}
	if res.Passes == 0 {
		t.Fatal("axe-core checked nothing")
	}
	for _, v := range res.Violations {
		t.Errorf("axe-core %s (%s): %s on %v", v.ID, v.Impact, v.Help, v.Nodes)
	}
}

// checkNames checks in Chromium's accessibility tree that every control a user can operate
// has an accessible name.
func checkNames(t *testing.T, ctx context.Context) {
	t.Helper()
	tree, err := chromedp.Call(ctx, accessibility.GetFullAXTree, accessibility.GetFullAXTreeParams{})
	if err != nil {
		t.Fatalf("accessibility tree: %v", err)
	}
	controls := 0
	for _, n := range tree.Nodes {
		if n.Ignored || n.Role == nil {
			continue
		}
		role := strings.Trim(string(n.Role.Value), `"`)
		switch role {
		case "button", "textbox", "searchbox", "link", "progressbar", "dialog", "list", "table", "search", "region":
		default:
			continue
		}
		controls++
		name := ""
		if n.Name != nil {
			name = strings.Trim(string(n.Name.Value), `"`)
		}
		if strings.TrimSpace(name) == "" {
			t.Errorf("a %s without an accessible name (DOM node %d)", role, n.BackendDOMNodeID)
		}
	}
	if controls < 5 {
		t.Fatalf("only %d named controls in the accessibility tree", controls)
	}
}

// shot saves a full-page screenshot as NAME.png in dir.
func shot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Logf("screenshot %s: %v", name, err)
		return
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Logf("screenshot %s: %v", name, err)
	}
}
