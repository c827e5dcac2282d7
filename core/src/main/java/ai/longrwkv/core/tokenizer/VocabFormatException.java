package ai.longrwkv.core.tokenizer;

import java.nio.file.Path;

/** A vocab file line that cannot be read; the message names the file, the line and what was expected there. */
public final class VocabFormatException extends IllegalArgumentException {
    private static final long serialVersionUID = 1L;

    private final transient Path file;
    private final int line;

    public VocabFormatException(Path file, int line, String problem) {
        super(file + " line " + line + ": " + problem);
        this.file = file;
        this.line = line;
    }

    public Path file() {
        return file;
    }

    /** 1-based line number. */
    public int line() {
        return line;
    }
}
