package console

import (
	"embed"
	"io/fs"
	"net/http"
)

// The page: plain HTML, CSS and ES modules, no build step, embedded in the binary. Nothing is
// fetched from elsewhere at run time; the CSP allows scripts from the console only.
//
//go:embed web
var webFS embed.FS

//go:embed openapi.yaml
var openAPI []byte

// OpenAPI returns the API's description (openapi.yaml).
func OpenAPI() []byte { return openAPI }

func (s *Server) assetHandler() http.Handler {
	sub, _ := fs.Sub(webFS, "web") // "web" is embedded above: Sub cannot fail
	files := http.StripPrefix("/assets/", http.FileServer(http.FS(filesOnly{sub})))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
}

func (s *Server) servePage(w http.ResponseWriter, r *http.Request) {
	page, err := webFS.ReadFile("web/index.html")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(page)
}

func serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/yaml")
	_, _ = w.Write(openAPI)
}

// filesOnly hides directories, so that the file server lists none.
type filesOnly struct{ fs.FS }

func (f filesOnly) Open(name string) (fs.File, error) {
	file, err := f.FS.Open(name)
	if err != nil {
		return nil, err
	}
	if st, err := file.Stat(); err != nil || st.IsDir() {
		file.Close()
		return nil, fs.ErrNotExist
	}
	return file, nil
}
