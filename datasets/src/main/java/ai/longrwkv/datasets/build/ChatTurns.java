package ai.longrwkv.datasets.build;

/**
 * Message and speaker normalization for the RWKV World chat layout ({@link ChatTemplate#WORLD}), shared by the chat
 * and PIPPA formats:
 * <pre>
 * System: {persona}\n\nUser: {message}\n\nAssistant: {message}\n\nUser: ...   then token 0
 * </pre>
 * Turns are "{Speaker}: {message}" joined by one blank line. A blank line ends a turn, so inside a message every run
 * of blank lines (lines empty or only whitespace) collapses to one newline; Windows and old Mac line ends become \n
 * and the message is trimmed. Masking: an untrained turn is masked with the blank line after it; a trained turn
 * masks its "{Speaker}:" and trains " {message}" plus the blank line after it (that is how the model learns to end
 * its turn); the final token 0 is trained if the last turn is. This matches inference, where the prompt ends with
 * "Assistant:" and the model writes the rest.
 */
public final class ChatTurns {
    private ChatTurns() { }

    /**
     * A message as it goes into a turn: line ends normalized to \n, blank lines dropped (so paragraphs are separated
     * by one newline), leading and trailing whitespace removed. Whitespace inside non-blank lines is kept.
     */
    public static String normalizeMessage(String message) {
        String s = message.indexOf('\r') >= 0 ? message.replace("\r\n", "\n").replace('\r', '\n') : message;
        if (s.indexOf('\n') < 0) return s.strip();
        StringBuilder out = new StringBuilder(s.length());
        int start = 0;
        while (start <= s.length()) {
            int end = s.indexOf('\n', start);
            if (end < 0) end = s.length();
            String line = s.substring(start, end);
            if (!line.isBlank()) {
                if (out.length() > 0) out.append('\n');
                out.append(line);
            }
            start = end + 1;
        }
        return out.toString().strip();
    }

    /** A speaker name: whitespace runs (newlines included) become one space, trimmed; empty is an error. */
    public static String normalizeSpeaker(String name, String what) {
        String s = name.strip().replaceAll("\\s+", " ");
        if (s.isEmpty()) throw new RecordException(what + " is empty");
        return s;
    }
}
