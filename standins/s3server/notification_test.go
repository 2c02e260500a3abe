package s3server

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
)

const arnQ = "arn:aws:sqs:us-east-1:000000000000:q"

func wrapQueues(inner string) []byte {
	return []byte(`<NotificationConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">` + inner + `</NotificationConfiguration>`)
}

func queueXMLFor(id, arn string, events []string, rules ...[2]string) string {
	var b strings.Builder
	b.WriteString("<QueueConfiguration>")
	if id != "" {
		b.WriteString("<Id>" + id + "</Id>")
	}
	b.WriteString("<Queue>" + arn + "</Queue>")
	for _, e := range events {
		b.WriteString("<Event>" + e + "</Event>")
	}
	if len(rules) > 0 {
		b.WriteString("<Filter><S3Key>")
		for _, r := range rules {
			b.WriteString("<FilterRule><Name>" + r[0] + "</Name><Value>" + r[1] + "</Value></FilterRule>")
		}
		b.WriteString("</S3Key></Filter>")
	}
	b.WriteString("</QueueConfiguration>")
	return b.String()
}

func TestParseNotification(t *testing.T) {
	created := []string{"s3:ObjectCreated:*"}
	tests := []struct {
		name     string
		body     []byte
		want     []queueConfig
		code     string // expected error code, "" for success
		contains string
	}{
		{name: "empty configuration", body: wrapQueues(""), want: []queueConfig{}},
		{name: "one queue with filters",
			body: wrapQueues(queueXMLFor("a", arnQ, []string{"s3:ObjectCreated:Put", "s3:ObjectRemoved:*"},
				[2]string{"prefix", "upload/"}, [2]string{"Suffix", ".jpg"})),
			want: []queueConfig{{ID: "a", QueueARN: arnQ, Events: []string{"s3:ObjectCreated:Put", "s3:ObjectRemoved:*"},
				Prefix: "upload/", Suffix: ".jpg"}}},
		{name: "disjoint prefixes do not overlap",
			body: wrapQueues(queueXMLFor("a", arnQ, created, [2]string{"prefix", "a/"}) +
				queueXMLFor("b", arnQ, created, [2]string{"prefix", "b/"})),
			want: []queueConfig{{ID: "a", QueueARN: arnQ, Events: created, Prefix: "a/"},
				{ID: "b", QueueARN: arnQ, Events: created, Prefix: "b/"}}},
		{name: "disjoint suffixes do not overlap",
			body: wrapQueues(queueXMLFor("a", arnQ, created, [2]string{"suffix", ".jpg"}) +
				queueXMLFor("b", arnQ, created, [2]string{"suffix", ".png"})),
			want: []queueConfig{{ID: "a", QueueARN: arnQ, Events: created, Suffix: ".jpg"},
				{ID: "b", QueueARN: arnQ, Events: created, Suffix: ".png"}}},
		{name: "disjoint events do not overlap",
			body: wrapQueues(queueXMLFor("a", arnQ, created) + queueXMLFor("b", arnQ, []string{"s3:ObjectRemoved:Delete"})),
			want: []queueConfig{{ID: "a", QueueARN: arnQ, Events: created},
				{ID: "b", QueueARN: arnQ, Events: []string{"s3:ObjectRemoved:Delete"}}}},
		{name: "specific events of one family do not overlap",
			body: wrapQueues(queueXMLFor("a", arnQ, []string{"s3:ObjectCreated:Put"}) +
				queueXMLFor("b", arnQ, []string{"s3:ObjectCreated:Copy"})),
			want: []queueConfig{{ID: "a", QueueARN: arnQ, Events: []string{"s3:ObjectCreated:Put"}},
				{ID: "b", QueueARN: arnQ, Events: []string{"s3:ObjectCreated:Copy"}}}},
		{name: "not XML", body: []byte("{"), code: "MalformedXML"},
		{name: "no events", body: wrapQueues(queueXMLFor("a", arnQ, nil)), code: "MalformedXML"},
		{name: "no queue", body: wrapQueues("<QueueConfiguration><Event>s3:ObjectCreated:*</Event></QueueConfiguration>"), code: "MalformedXML"},
		{name: "unknown event", body: wrapQueues(queueXMLFor("a", arnQ, []string{"s3:ObjectCreated:Teleport"})),
			code: "InvalidArgument", contains: "not supported"},
		{name: "event without s3 prefix", body: wrapQueues(queueXMLFor("a", arnQ, []string{"ObjectCreated:Put"})),
			code: "InvalidArgument", contains: "not supported"},
		{name: "event S3 has but the stand-in does not", body: wrapQueues(queueXMLFor("a", arnQ, []string{"s3:ObjectRestore:Post"})),
			code: "InvalidArgument", contains: "not supported"},
		{name: "bad rule name", body: wrapQueues(queueXMLFor("a", arnQ, created, [2]string{"infix", "x"})),
			code: "InvalidArgument", contains: "prefix or suffix"},
		{name: "two prefix rules", body: wrapQueues(queueXMLFor("a", arnQ, created, [2]string{"prefix", "x"}, [2]string{"Prefix", "y"})),
			code: "InvalidArgument", contains: "more than one prefix"},
		{name: "duplicate ids", body: wrapQueues(queueXMLFor("a", arnQ, created, [2]string{"prefix", "a/"}) +
			queueXMLFor("a", arnQ, created, [2]string{"prefix", "b/"})),
			code: "InvalidArgument", contains: "unique"},
		{name: "same prefix overlaps", body: wrapQueues(queueXMLFor("a", arnQ, created, [2]string{"prefix", "up/"}) +
			queueXMLFor("b", arnQ, []string{"s3:ObjectCreated:Put"}, [2]string{"prefix", "up/"})),
			code: "InvalidArgument", contains: "overlap"},
		{name: "nested prefixes overlap", body: wrapQueues(queueXMLFor("a", arnQ, created, [2]string{"prefix", "up/"}) +
			queueXMLFor("b", arnQ, created, [2]string{"prefix", "up/img/"})),
			code: "InvalidArgument", contains: "overlap"},
		{name: "no filter overlaps any filter", body: wrapQueues(queueXMLFor("a", arnQ, created) +
			queueXMLFor("b", arnQ, created, [2]string{"suffix", ".jpg"})),
			code: "InvalidArgument", contains: "overlap"},
		{name: "overlap across destinations", body: wrapQueues(queueXMLFor("a", arnQ, []string{"s3:ObjectRemoved:*"}) +
			queueXMLFor("b", "arn:aws:sqs:us-east-1:000000000000:other", []string{"s3:ObjectRemoved:DeleteMarkerCreated"})),
			code: "InvalidArgument", contains: "overlap"},
		{name: "topic", body: wrapQueues("<TopicConfiguration><Topic>arn:aws:sns:us-east-1:1:t</Topic><Event>s3:ObjectCreated:*</Event></TopicConfiguration>"),
			code: "InvalidArgument", contains: "only QueueConfiguration"},
		{name: "lambda", body: wrapQueues("<CloudFunctionConfiguration><CloudFunction>arn:aws:lambda:us-east-1:1:function:f</CloudFunction><Event>s3:ObjectCreated:*</Event></CloudFunctionConfiguration>"),
			code: "InvalidArgument", contains: "only QueueConfiguration"},
		{name: "eventbridge", body: wrapQueues("<EventBridgeConfiguration></EventBridgeConfiguration>"),
			code: "InvalidArgument", contains: "only QueueConfiguration"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseNotification(tt.body)
			if tt.code == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				if !reflect.DeepEqual(got, tt.want) {
					t.Errorf("got  %+v\nwant %+v", got, tt.want)
				}
				return
			}
			var ae *argError
			if !errors.As(err, &ae) {
				t.Fatalf("want %s error, got %v (configs %+v)", tt.code, err, got)
			}
			if ae.Code != tt.code || ae.Status != http.StatusBadRequest || !strings.Contains(ae.Message, tt.contains) {
				t.Errorf("got %d %s %q, want 400 %s containing %q", ae.Status, ae.Code, ae.Message, tt.code, tt.contains)
			}
		})
	}
}

func TestParseNotificationGeneratesIDs(t *testing.T) {
	got, err := parseNotification(wrapQueues(queueXMLFor("", arnQ, []string{"s3:ObjectCreated:*"}, [2]string{"prefix", "a/"}) +
		queueXMLFor("", arnQ, []string{"s3:ObjectCreated:*"}, [2]string{"prefix", "b/"})))
	if err != nil {
		t.Fatal(err)
	}
	if got[0].ID == "" || got[1].ID == "" || got[0].ID == got[1].ID {
		t.Errorf("generated IDs %q and %q: want two distinct non-empty IDs", got[0].ID, got[1].ID)
	}
}

func TestMatches(t *testing.T) {
	c := queueConfig{Events: []string{"s3:ObjectCreated:*", "s3:ObjectRemoved:Delete"}, Prefix: "upload/", Suffix: ".jpg"}
	tests := []struct {
		event, key string
		want       bool
	}{
		{"ObjectCreated:Put", "upload/a.jpg", true},
		{"ObjectCreated:CompleteMultipartUpload", "upload/x/y z.jpg", true},
		{"ObjectCreated:Copy", "upload/.jpg", true},
		{"ObjectRemoved:Delete", "upload/a.jpg", true},
		{"ObjectRemoved:DeleteMarkerCreated", "upload/a.jpg", false},
		{"ObjectCreated:Put", "upload/a.JPG", false},
		{"ObjectCreated:Put", "Upload/a.jpg", false},
		{"ObjectCreated:Put", "other/upload/a.jpg", false},
		{"ObjectCreated:Put", "upload/a.jpg.png", false},
		{"ObjectCreated:Put", "upload.jpg", false},
	}
	for _, tt := range tests {
		if got := c.matches(tt.event, tt.key); got != tt.want {
			t.Errorf("matches(%s, %q) = %v, want %v", tt.event, tt.key, got, tt.want)
		}
	}
	all := queueConfig{Events: []string{"s3:ObjectRemoved:*"}}
	if !all.matches("ObjectRemoved:DeleteMarkerCreated", "any key") || all.matches("ObjectCreated:Put", "k") {
		t.Error("ObjectRemoved:* with no filter")
	}
}

func TestParseQueueARN(t *testing.T) {
	tests := []struct {
		arn  string
		want queueARN
		ok   bool
	}{
		{"arn:aws:sqs:us-east-1:000000000000:image-events", queueARN{"us-east-1", "000000000000", "image-events"}, true},
		{"arn:aws-cn:sqs:cn-north-1:123:q.fifo", queueARN{"cn-north-1", "123", "q.fifo"}, true},
		{"arn:aws:sns:us-east-1:000000000000:t", queueARN{}, false},
		{"arn:aws:sqs:us-east-1:000000000000", queueARN{}, false},
		{"arn:aws:sqs:us-east-1::q", queueARN{}, false},
		{"arn:aws:sqs:us-east-1:1:q:extra", queueARN{}, false},
		{"http://127.0.0.1:1/000000000000/q", queueARN{}, false},
		{"", queueARN{}, false},
	}
	for _, tt := range tests {
		got, ok := parseQueueARN(tt.arn)
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseQueueARN(%q) = %+v, %v; want %+v, %v", tt.arn, got, ok, tt.want, tt.ok)
		}
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		method, target string
		header         string // x-amz-copy-source
		want           op
	}{
		{"PUT", "/b/k", "", opPut},
		{"PUT", "/b/dir/k", "/src/k", opCopy},
		{"POST", "/b", "", opPost},
		{"POST", "/b?delete", "", opMultiDelete},
		{"POST", "/b/k?uploadId=1", "", opComplete},
		{"PUT", "/b/k?uploadId=1&partNumber=1", "", opOther},
		{"DELETE", "/b/k?uploadId=1", "", opOther},
		{"POST", "/b/k?uploads", "", opOther},
		{"DELETE", "/b/k", "", opDelete},
		{"DELETE", "/b/k?versionId=abc", "", opDeleteVersion},
		{"DELETE", "/b/k?versionId=null", "", opDeleteVersion}, // the null version, as in S3
		{"DELETE", "/b", "", opDeleteBucket},
		{"PUT", "/b", "", opOther},
		{"PUT", "/b?versioning", "", opOther},
		{"GET", "/b/k", "", opOther},
		{"HEAD", "/b/k", "", opOther},
		{"GET", "/", "", opOther},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(tt.method, tt.target, nil)
		if tt.header != "" {
			r.Header.Set("X-Amz-Copy-Source", tt.header)
		}
		bucket, object, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
		if got := classify(r, bucket, object, r.URL.Query()); got != tt.want {
			t.Errorf("%s %s: got %d, want %d", tt.method, tt.target, got, tt.want)
		}
	}
}

func FuzzParseNotification(f *testing.F) {
	f.Add(wrapQueues(queueXMLFor("a", arnQ, []string{"s3:ObjectCreated:*"}, [2]string{"prefix", "upload/"})))
	f.Add(wrapQueues(queueXMLFor("", arnQ, []string{"s3:ObjectRemoved:*", "s3:ObjectCreated:Put"}, [2]string{"suffix", ".jpg"}, [2]string{"prefix", "a&amp;b"})))
	f.Add(wrapQueues(queueXMLFor("a", arnQ, []string{"s3:ObjectCreated:*"}) + queueXMLFor("b", arnQ, []string{"s3:ObjectCreated:Put"})))
	f.Add([]byte("<NotificationConfiguration/>"))
	f.Add([]byte("<x"))
	f.Fuzz(func(t *testing.T, body []byte) {
		configs, err := parseNotification(body)
		if err != nil {
			var ae *argError
			if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest {
				t.Fatalf("error is not a 400 argError: %v", err)
			}
			return
		}
		// What was accepted renders and parses back to the same configurations.
		out, err := marshalNotification(configs)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		again, err := parseNotification(out)
		if err != nil {
			t.Fatalf("re-parse of %s: %v", out, err)
		}
		if len(configs) == 0 && len(again) == 0 {
			return
		}
		if !reflect.DeepEqual(configs, again) {
			t.Fatalf("round trip\n got %+v\nwant %+v", again, configs)
		}
	})
}
