package ai.longrwkv.cli;

import ai.longrwkv.core.tokenizer.Tokenizer;
import ai.longrwkv.core.tokenizer.Tokenizers;
import ai.longrwkv.datasets.build.BuildReport;
import ai.longrwkv.datasets.build.ChatTemplate;
import ai.longrwkv.datasets.build.DatasetBuilder;
import ai.longrwkv.datasets.build.InputFormat;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;

/** `data build`: input files to a binidx dataset with a loss mask. */
@Command(name = "build", mixinStandardHelpOptions = true,
        description = {"Tokenize input files into PREFIX.bin / PREFIX.idx (RWKV-LM / Megatron binidx, uint16 tokens, each document",
                "followed by token 0), PREFIX.mask (one loss flag per token) and PREFIX.meta.json. Formats:",
                "  text               jsonl {\"text\": ...} or .txt files (one document per file); all trained",
                "  prompt-completion  jsonl {\"prompt\", \"completion\"}; prompt masked",
                "  chat               jsonl {\"messages\": [{\"role\", \"content\", \"name\"?}]} laid out by --template",
                "                     (world: User: ...\\n\\nAssistant: ...); assistant turns trained",
                "  pippa              PIPPA jsonl (bot_name, bot_description, bot_definitions, bot_greeting, conversation);",
                "                     persona as a masked system turn where --template puts it, human turns masked, bot turns trained",
                "Inputs ending in .gz are decompressed. Outputs appear only when complete; the same inputs and options give",
                "the same bytes."})
final class DataBuildCommand implements Callable<Integer> {
    @Option(names = "--input", required = true, arity = "1..*", paramLabel = "FILE", description = "Input files (jsonl, .txt for text, .gz).")
    List<Path> inputs;

    @Option(names = "--format", required = true, description = "text | chat | pippa | prompt-completion.")
    String format;

    @Option(names = "--tokenizer", required = true, paramLabel = "SPEC", description = "'world:PATH' (rwkv_vocab_v20230424.txt) or 'bytes'.")
    String tokenizerSpec;

    @Option(names = "--out", required = true, paramLabel = "PREFIX", description = "Output prefix: writes PREFIX.bin, .idx, .mask, .meta.json.")
    Path out;

    @Option(names = "--template", defaultValue = "world", paramLabel = "world|metharme|FILE",
            description = "Chat template of the chat and pippa formats: world (System:/User:/Assistant: turns, blank lines between),"
                    + " metharme (<|system|>/<|user|>/<|model|>) or a template file (datasets/README.md) (default: ${DEFAULT-VALUE}).")
    String template;

    @Option(names = "--user-name", defaultValue = "User", paramLabel = "NAME",
            description = "The user's display name in chat and pippa turns, and what {{user}} becomes (default: ${DEFAULT-VALUE}).")
    String userName;

    @Option(names = "--train-on", defaultValue = "assistant", paramLabel = "WHAT",
            description = "assistant (default: the format's masking: assistant/bot turns, completions, all text) | all (every token).")
    String trainOn;

    @Option(names = "--seed", description = "Shuffle the documents with this seed (default: keep the input order).")
    Long seed;

    @Option(names = "--skip-bad", description = "Skip bad records (malformed JSON, missing fields, empty conversations, invalid UTF-8), count and report them, instead of stopping at the first.")
    boolean skipBad;

    @Option(names = "--threads", description = "Tokenizer threads (default: the number of CPUs).")
    Integer threads;

    @Option(names = "--max-line-mb", defaultValue = "64", paramLabel = "MB",
            description = "Longest jsonl line (one record) in MB; a longer line is a bad record, so a corrupt input cannot exhaust memory (default: ${DEFAULT-VALUE}).")
    int maxLineMb;

    @Override
    public Integer call() {
        InputFormat inputFormat = InputFormat.parse(format);
        boolean trainAll = switch (trainOn.strip().toLowerCase(Locale.ROOT)) {
            case "assistant" -> false;
            case "all" -> true;
            default -> throw new IllegalArgumentException("--train-on: expected assistant or all, got '" + trainOn + "'");
        };
        ChatTemplate chatTemplate = ChatTemplate.parse(template);
        if (userName.isBlank()) throw new IllegalArgumentException("--user-name must not be empty");
        Tokenizer tokenizer = Tokenizers.parse(tokenizerSpec);
        if (maxLineMb < 1 || maxLineMb > 1024) throw new IllegalArgumentException("--max-line-mb must be 1..1024, got " + maxLineMb);
        if (threads != null && (threads < 1 || threads > 1024)) throw new IllegalArgumentException("--threads must be 1..1024, got " + threads);
        int workers = threads != null ? threads : Runtime.getRuntime().availableProcessors();
        DatasetBuilder builder = new DatasetBuilder(new DatasetBuilder.Options(inputFormat, tokenizer, tokenizerSpec.strip(),
                trainAll, skipBad, workers, seed)).maxLineBytes((long) maxLineMb << 20).chat(chatTemplate, userName);
        BuildReport r = builder.build(inputs, out);
        System.out.printf(Locale.ROOT, "wrote %s.{bin,idx,mask,meta.json}: %,d documents, %,d tokens, %.1f%% trained%n",
                r.prefix(), r.documents(), r.tokens(), r.tokens() == 0 ? 0.0 : 100.0 * r.trainedTokens() / r.tokens());
        System.out.printf(Locale.ROOT, "read %,.1f MB in %.1f s: %.1f MB/s, %.2f M tokens/s (%d threads)%n",
                r.inputBytes() / 1e6, r.seconds(), r.megabytesPerSecond(), r.tokensPerSecond() / 1e6, workers);
        if (r.trainedTokens() == 0 && r.documents() > 0) {
            System.err.println("warning: no token of " + r.prefix() + " is trained (no " + (inputFormat == InputFormat.CHAT
                    ? "turn with an assistant role: assistant, gpt, model, bot or char" : "trained part") + "); finetune and state-tune refuse it"
                    + " (--train-on all trains every token)");
        } else if (r.documentsWithoutTrainedTokens() > 0) {
            System.out.printf(Locale.ROOT, "note: %,d documents have no trained token (e.g. a chat without an assistant turn)%n",
                    r.documentsWithoutTrainedTokens());
        }
        if (r.skippedRecords() > 0) {
            System.out.printf(Locale.ROOT, "skipped %,d bad records%s:%n", r.skippedRecords(),
                    r.skippedRecords() > r.skippedExamples().size() ? " (the first " + r.skippedExamples().size() + " below)" : "");
            for (String s : r.skippedExamples()) System.out.println("  " + s);
        }
        return 0;
    }
}
