package ai.longrwkv.core.io;

/**
 * A model or state file that cannot be used as it is. The message always names the file and, where it applies,
 * the tensor key or byte offset, and says what was expected, so that the command line can print it as it is.
 */
public class ModelFormatException extends RuntimeException {
    public ModelFormatException(String message) { super(message); }
    public ModelFormatException(String message, Throwable cause) { super(message, cause); }
}
