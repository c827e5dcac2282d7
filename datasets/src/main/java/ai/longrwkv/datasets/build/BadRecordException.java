package ai.longrwkv.datasets.build;

import java.nio.file.Path;

/** A bad input record, located: the message is "FILE line N: problem". */
public final class BadRecordException extends IllegalArgumentException {
    private static final long serialVersionUID = 1L;

    private final transient Path file;
    private final long line;
    private final String problem;

    public BadRecordException(Path file, long line, String problem) {
        super(file + " line " + line + ": " + problem);
        this.file = file;
        this.line = line;
        this.problem = problem;
    }

    public Path file() {
        return file;
    }

    /** 1-based line of the record (for a .txt document: the line of the problem). */
    public long line() {
        return line;
    }

    public String problem() {
        return problem;
    }
}
