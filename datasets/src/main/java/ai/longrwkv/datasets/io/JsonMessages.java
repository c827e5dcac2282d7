package ai.longrwkv.datasets.io;

/** Gson's parse errors as a user reads them: the position and the problem, without Java class names or links. */
public final class JsonMessages {
    private JsonMessages() { }

    public static String problem(RuntimeException e) {
        String why = e.getMessage() == null ? "malformed JSON" : e.getMessage();
        int see = why.indexOf("\nSee https://");
        if (see > 0) why = why.substring(0, see);
        // a wrapped cause prints as "com.google.gson.stream.MalformedJsonException: ..." or "java.io.EOFException: ..."
        why = why.replaceAll("(?:[a-z][a-z0-9_]*\\.)+[A-Z][A-Za-z0-9_]*(?:Exception|Error): ?", "");
        // "Use JsonReader.setStrictness(Strictness.LENIENT) to accept malformed JSON at line 1 column 2 path $" is advice to programmers
        why = why.replaceAll("Use JsonReader\\.set(?:Strictness\\(Strictness\\.LENIENT\\)|Lenient\\(true\\)) to accept malformed JSON", "not standard JSON");
        return why.isBlank() ? "malformed JSON" : why.strip();
    }
}
