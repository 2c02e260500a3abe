package sqsqueue

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"imgpipe/pkg/failure"
	"imgpipe/pkg/queue"
)

// TestBatchAnswer: of a batch of four, the entry the answer confirms is done, the refused one
// carries its classified error, and the two it names in neither (one missing, one under an
// ID out of range) come back transient NoBatchResult, for Send and Delete alike.
func TestBatchAnswer(t *testing.T) {
	batch := []*queue.Message{{ID: "a"}, {ID: "b"}, {ID: "c"}, {ID: "d"}}
	ok := []*string{aws.String("0"), aws.String("7")}
	failed := []types.BatchResultErrorEntry{{Id: aws.String("1"), Code: aws.String("ReceiptHandleIsInvalid"), SenderFault: true, Message: aws.String("bad handle")}}
	for _, what := range []string{"send", "delete"} {
		res := batchAnswer(what, "q", batch, ok, failed)
		if len(res) != 4 || res[0] != nil || res[1] == nil || failure.ReasonOf(res[1]) == "NoBatchResult" {
			t.Fatalf("%s: %v, want the first done and the second refused", what, res)
		}
		for _, i := range []int{2, 3} {
			if failure.ClassOf(res[i]) != failure.Transient || failure.ReasonOf(res[i]) != "NoBatchResult" {
				t.Errorf("%s: entry %d: %v, want a transient NoBatchResult", what, i, res[i])
			}
		}
	}
}

// TestVisibilityAnswer: a visibility change's batch answer by batchAnswer's rule (an entry
// the answer names in neither list is not done), a lapsed lease done only when lapsedOK.
func TestVisibilityAnswer(t *testing.T) {
	batch := []*queue.Message{{ID: "a"}, {ID: "b"}, {ID: "c"}, {ID: "d"}}
	ok := []*string{aws.String("0"), aws.String("9")}
	failed := []types.BatchResultErrorEntry{
		{Id: aws.String("1"), Code: aws.String("AWS.SimpleQueueService.MessageNotInflight"), SenderFault: true, Message: aws.String("not in flight")},
		{Id: aws.String("2"), Code: aws.String("InvalidParameterValue"), SenderFault: true, Message: aws.String("bad timeout")},
	}
	for _, c := range []struct {
		what     string
		lapsedOK bool
	}{{"extend", false}, {"release", true}} {
		res := visibilityAnswer(c.what, "q", batch, ok, failed, c.lapsedOK)
		if len(res) != 4 || res[0] != nil {
			t.Fatalf("%s: %v, want 4 answers, the first done", c.what, res)
		}
		if lapsedDone := res[1] == nil; lapsedDone != c.lapsedOK {
			t.Errorf("%s: the lapsed lease's answer %v, want done %v", c.what, res[1], c.lapsedOK)
		}
		if res[2] == nil || failure.ReasonOf(res[2]) == "NoBatchResult" {
			t.Errorf("%s: the refused entry's answer %v, want its own error", c.what, res[2])
		}
		if failure.ClassOf(res[3]) != failure.Transient || failure.ReasonOf(res[3]) != "NoBatchResult" {
			t.Errorf("%s: the unanswered entry's answer %v, want a transient NoBatchResult", c.what, res[3])
		}
	}
}
