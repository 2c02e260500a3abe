package s3server

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"strings"
)

const s3Namespace = "http://s3.amazonaws.com/doc/2006-03-01/"

// Event names as they appear in a notification configuration (with the "s3:" prefix).
const (
	eventCreatedAll      = "s3:ObjectCreated:*"
	eventCreatedPut      = "s3:ObjectCreated:Put"
	eventCreatedPost     = "s3:ObjectCreated:Post"
	eventCreatedCopy     = "s3:ObjectCreated:Copy"
	eventCreatedComplete = "s3:ObjectCreated:CompleteMultipartUpload"
	eventRemovedAll      = "s3:ObjectRemoved:*"
	eventRemovedDelete   = "s3:ObjectRemoved:Delete"
	eventRemovedMarker   = "s3:ObjectRemoved:DeleteMarkerCreated"
	eventLifecycleAll    = "s3:LifecycleExpiration:*"
	eventLifecycleDelete = "s3:LifecycleExpiration:Delete"
	eventLifecycleMarker = "s3:LifecycleExpiration:DeleteMarkerCreated"
)

// supportedEvents are the configuration event types the stand-in accepts.
var supportedEvents = map[string]bool{
	eventCreatedAll: true, eventCreatedPut: true, eventCreatedPost: true, eventCreatedCopy: true,
	eventCreatedComplete: true, eventRemovedAll: true, eventRemovedDelete: true, eventRemovedMarker: true,
	eventLifecycleAll: true, eventLifecycleDelete: true, eventLifecycleMarker: true,
}

// notificationXML is the wire form of NotificationConfiguration, for both directions.
type notificationXML struct {
	XMLName xml.Name   `xml:"NotificationConfiguration"`
	Xmlns   string     `xml:"xmlns,attr,omitempty"`
	Queues  []queueXML `xml:"QueueConfiguration"`
	// The stand-in only delivers to SQS; these are read to be rejected.
	Topics      []struct{} `xml:"TopicConfiguration"`
	Lambdas     []struct{} `xml:"CloudFunctionConfiguration"`
	EventBridge []struct{} `xml:"EventBridgeConfiguration"`
}

type queueXML struct {
	ID     string     `xml:"Id,omitempty"`
	Queue  string     `xml:"Queue"`
	Events []string   `xml:"Event"`
	Filter *filterXML `xml:"Filter,omitempty"`
}

type filterXML struct {
	S3Key struct {
		Rules []filterRuleXML `xml:"FilterRule"`
	} `xml:"S3Key"`
}

type filterRuleXML struct {
	Name  string `xml:"Name"`
	Value string `xml:"Value"`
}

// queueConfig is one validated QueueConfiguration.
type queueConfig struct {
	ID       string
	QueueARN string
	Events   []string // as configured, with the "s3:" prefix
	Prefix   string
	Suffix   string
}

// matches reports whether an event (name without "s3:", e.g. "ObjectCreated:Put") on key
// is selected by c. Filters compare the decoded key, case-sensitively, as S3 does.
func (c *queueConfig) matches(eventName, key string) bool {
	if !strings.HasPrefix(key, c.Prefix) || !strings.HasSuffix(key, c.Suffix) {
		return false
	}
	for _, e := range c.Events {
		if eventMatches(e, "s3:"+eventName) {
			return true
		}
	}
	return false
}

// eventMatches reports whether the configured event pattern selects the concrete event.
func eventMatches(pattern, event string) bool {
	if base, ok := strings.CutSuffix(pattern, "*"); ok {
		return strings.HasPrefix(event, base)
	}
	return pattern == event
}

// eventsOverlap reports whether two configured event types can select a common event.
func eventsOverlap(a, b string) bool {
	return eventMatches(a, b) || eventMatches(b, a)
}

// argError is an S3 error response with the InvalidArgument-style argument fields.
type argError struct {
	Status        int
	Code          string
	Message       string
	ArgumentName  string
	ArgumentValue string
}

func (e *argError) Error() string {
	if e.ArgumentName != "" {
		return fmt.Sprintf("%s: %s (%s=%s)", e.Code, e.Message, e.ArgumentName, e.ArgumentValue)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

func invalidArgument(message, name, value string) *argError {
	return &argError{Status: 400, Code: "InvalidArgument", Message: message, ArgumentName: name, ArgumentValue: value}
}

// parseNotification decodes and validates a PutBucketNotificationConfiguration body. It
// checks everything that does not need SQS: the destinations are validated by the caller.
func parseNotification(body []byte) ([]queueConfig, error) {
	var in notificationXML
	if err := xml.Unmarshal(body, &in); err != nil {
		return nil, &argError{Status: 400, Code: "MalformedXML",
			Message: "The XML you provided was not well-formed or did not validate against our published schema"}
	}
	if len(in.Topics) > 0 || len(in.Lambdas) > 0 || len(in.EventBridge) > 0 {
		return nil, &argError{Status: 400, Code: "InvalidArgument",
			Message: "s3standin supports only QueueConfiguration (SQS) destinations; TopicConfiguration, " +
				"CloudFunctionConfiguration and EventBridgeConfiguration are not supported by the stand-in"}
	}
	configs := make([]queueConfig, 0, len(in.Queues))
	ids := make(map[string]bool, len(in.Queues))
	for _, q := range in.Queues {
		c := queueConfig{ID: strings.TrimSpace(q.ID), QueueARN: strings.TrimSpace(q.Queue)}
		if c.ID == "" {
			c.ID = newConfigID()
		}
		if len(c.ID) > 255 {
			return nil, invalidArgument("The ID of a notification configuration must be at most 255 characters", "Id", c.ID)
		}
		if ids[c.ID] {
			return nil, invalidArgument("The ID of a notification configuration must be unique", "Id", c.ID)
		}
		ids[c.ID] = true
		if c.QueueARN == "" {
			return nil, &argError{Status: 400, Code: "MalformedXML",
				Message: "The XML you provided was not well-formed or did not validate against our published schema"}
		}
		if len(q.Events) == 0 {
			return nil, &argError{Status: 400, Code: "MalformedXML",
				Message: "The XML you provided was not well-formed or did not validate against our published schema"}
		}
		for _, e := range q.Events {
			e = strings.TrimSpace(e)
			if !supportedEvents[e] {
				return nil, invalidArgument("The event is not supported for notifications "+
					"(s3standin supports s3:ObjectCreated:* / Put / Post / Copy / CompleteMultipartUpload, "+
					"s3:ObjectRemoved:* / Delete / DeleteMarkerCreated and "+
					"s3:LifecycleExpiration:* / Delete / DeleteMarkerCreated)", "Event", e)
			}
			c.Events = append(c.Events, e)
		}
		if q.Filter != nil {
			var havePrefix, haveSuffix bool
			for _, r := range q.Filter.S3Key.Rules {
				switch strings.ToLower(strings.TrimSpace(r.Name)) {
				case "prefix":
					if havePrefix {
						return nil, invalidArgument("Cannot specify more than one prefix rule in a filter.", "FilterRule", r.Name)
					}
					havePrefix, c.Prefix = true, r.Value
				case "suffix":
					if haveSuffix {
						return nil, invalidArgument("Cannot specify more than one suffix rule in a filter.", "FilterRule", r.Name)
					}
					haveSuffix, c.Suffix = true, r.Value
				default:
					return nil, invalidArgument("filter rule name must be either prefix or suffix", "FilterRule", r.Name)
				}
				if len(r.Value) > 1024 {
					return nil, invalidArgument("The filter rule value is too long", "FilterRule", r.Name)
				}
			}
		}
		configs = append(configs, c)
	}
	if err := checkOverlap(configs); err != nil {
		return nil, err
	}
	return configs, nil
}

// checkOverlap rejects two configurations that could both select one event, which S3 forbids
// whatever their destinations: they overlap when they share an event type (wildcards
// included), one prefix is a prefix of the other and one suffix is a suffix of the other.
func checkOverlap(configs []queueConfig) error {
	for i := range configs {
		for j := i + 1; j < len(configs); j++ {
			a, b := &configs[i], &configs[j]
			if !strings.HasPrefix(a.Prefix, b.Prefix) && !strings.HasPrefix(b.Prefix, a.Prefix) {
				continue
			}
			if !strings.HasSuffix(a.Suffix, b.Suffix) && !strings.HasSuffix(b.Suffix, a.Suffix) {
				continue
			}
			for _, ea := range a.Events {
				for _, eb := range b.Events {
					if eventsOverlap(ea, eb) {
						return invalidArgument("Configurations overlap. Configurations on the same bucket "+
							"cannot share a common event type.", "Event", ea)
					}
				}
			}
		}
	}
	return nil
}

// marshalNotification renders configs as GetBucketNotificationConfiguration returns them.
func marshalNotification(configs []queueConfig) ([]byte, error) {
	out := notificationXML{Xmlns: s3Namespace}
	for _, c := range configs {
		q := queueXML{ID: c.ID, Queue: c.QueueARN, Events: c.Events}
		if c.Prefix != "" || c.Suffix != "" {
			q.Filter = &filterXML{}
			// S3 answers with capitalised rule names, whatever case was sent.
			if c.Prefix != "" {
				q.Filter.S3Key.Rules = append(q.Filter.S3Key.Rules, filterRuleXML{Name: "Prefix", Value: c.Prefix})
			}
			if c.Suffix != "" {
				q.Filter.S3Key.Rules = append(q.Filter.S3Key.Rules, filterRuleXML{Name: "Suffix", Value: c.Suffix})
			}
		}
		out.Queues = append(out.Queues, q)
	}
	body, err := xml.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("marshal notification configuration: %w", err)
	}
	return append([]byte(xml.Header), body...), nil
}

// newConfigID returns an ID like the ones S3 generates for configurations sent without one.
func newConfigID() string {
	var b [24]byte
	_, _ = rand.Read(b[:])
	return base64.RawStdEncoding.EncodeToString(b[:])
}

// queueARN is a parsed arn:PARTITION:sqs:REGION:ACCOUNT:NAME.
type queueARN struct {
	Region, Account, Name string
}

func parseQueueARN(arn string) (queueARN, bool) {
	parts := strings.Split(arn, ":")
	if len(parts) != 6 || parts[0] != "arn" || !strings.HasPrefix(parts[1], "aws") || parts[2] != "sqs" ||
		parts[3] == "" || parts[4] == "" || parts[5] == "" {
		return queueARN{}, false
	}
	return queueARN{Region: parts[3], Account: parts[4], Name: parts[5]}, true
}
