package ai.longrwkv.datasets.build;

/**
 * One input record cannot be turned into a document (missing field, wrong type, empty conversation, ...). The
 * message says what is wrong with the record; the builder adds the file and line ({@link BadRecordException}).
 */
public class RecordException extends IllegalArgumentException {
    private static final long serialVersionUID = 1L;

    public RecordException(String problem) {
        super(problem);
    }
}
