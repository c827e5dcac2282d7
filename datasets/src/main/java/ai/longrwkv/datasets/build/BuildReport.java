package ai.longrwkv.datasets.build;

import java.nio.file.Path;
import java.util.List;

/**
 * What `data build` did. skippedExamples holds the first few skipped records ("FILE line N: problem").
 * documentsWithoutTrainedTokens: documents whose every flag is 0 (e.g. a chat with no assistant turn).
 */
public record BuildReport(Path prefix, long documents, long tokens, long trainedTokens, long inputBytes,
                          long skippedRecords, List<String> skippedExamples, long blankLines,
                          long documentsWithoutTrainedTokens, double seconds) {
    public double megabytesPerSecond() {
        return seconds > 0 ? inputBytes / 1e6 / seconds : 0;
    }

    public double tokensPerSecond() {
        return seconds > 0 ? tokens / seconds : 0;
    }
}
