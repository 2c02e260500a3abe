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
