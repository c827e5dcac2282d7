package ai.longrwkv.cli;

import ai.longrwkv.datasets.build.ChatTemplate;
import ai.longrwkv.datasets.synth.FillerChats;
import ai.longrwkv.datasets.synth.PersonaTask;
import ai.longrwkv.eval.Grid;
import ai.longrwkv.eval.RetrievalEval;
import ai.longrwkv.eval.Scoring;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.Callable;

/** `eval persona`: does the character remember what was said early in a long chat? */
@Command(name = "persona", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Long-chat memory of a roleplay character (RULER-style), over a conversation length x fact position grid.",
                "Each conversation, laid out by --template: the character's definition as the system turn, filler exchanges",
                "(generated small talk or --filler-chats), one exchange per fact (the user's name, the character's real name,",
                "its pet, a promise, the user's lucky number) at its position, and a last user turn asking about one fact.",
                "The model's greedy reply (up to the end of its turn) is correct iff it holds the fact as whole words;",
                "the answer loss is the fact's loss given the conversation. Prompts are those of `data synth persona`.",
                "Writes DIR/trials.jsonl, summary.csv (length x position -> accuracy, answer loss), heatmap.png, run.json."})
final class EvalPersonaCommand implements Callable<Integer> {
    @Mixin EvalModelOptions modelOptions;

    @Option(names = "--lengths", required = true, paramLabel = "L,...",
            description = "Conversation lengths in tokens: 1k,2k,4k,...,128k (k = 1024; 'a,b,c,...,z' continues the progression).")
    String lengths;

    @Option(names = "--depths", defaultValue = "0,25,...,100", paramLabel = "D,...",
            description = "Positions of the asked fact in percent of the filler conversation, 0 = right after the character's definition"
                    + " (default: ${DEFAULT-VALUE}).")
    String depths;

    @Option(names = "--trials", defaultValue = "5", description = "Conversations per length x position (default: ${DEFAULT-VALUE}).")
    int trials;

    @Option(names = "--seed", defaultValue = "1", description = "Random seed; use another than the training data's (default: ${DEFAULT-VALUE}).")
    long seed;

    @Option(names = "--max-new-tokens", defaultValue = "24", paramLabel = "N", description = "Greedy tokens of the reply at most (default: ${DEFAULT-VALUE}).")
    int maxNewTokens;

    @Option(names = "--template", defaultValue = "world", paramLabel = "world|metharme|FILE",
            description = "Chat template of the conversation, as in data build --template (default: ${DEFAULT-VALUE}).")
    String template;

    @Option(names = "--user-name", defaultValue = "User", paramLabel = "NAME", description = "The user's display name in the turns (default: ${DEFAULT-VALUE}).")
    String userName;

    @Option(names = "--facts", defaultValue = "all", paramLabel = "F,...",
            description = "Facts stated in every conversation, one of them asked: user-name, char-name, pet, promise, number (default: ${DEFAULT-VALUE}).")
    String facts;

    @Option(names = "--filler-chats", paramLabel = "FILE", description = "Filler exchanges from this chat or PIPPA jsonl file instead of generated small talk.")
    Path fillerChats;

    @Option(names = "--out", required = true, paramLabel = "DIR", description = "Output directory.")
    Path out;

    @Override
    public Integer call() {
        Cli.range("--trials", trials, 1, 1_000_000);
        Cli.range("--max-new-tokens", maxNewTokens, 1, 1_000_000);
        List<Integer> lengthList = Grid.lengths("--lengths", lengths);
        double[] depthList = Grid.depthsPercent("--depths", depths);
        ChatTemplate chatTemplate = ChatTemplate.parse(template);
        List<String> factList = PersonaTask.parseFacts(facts);
        FillerChats filler = fillerChats == null ? FillerChats.synthetic() : FillerChats.fromFile(fillerChats);
        try (EvalModelOptions.Loaded m = modelOptions.load()) {
            PersonaTask task = new PersonaTask(m.tokenizer, chatTemplate, filler, factList, userName);
            RetrievalEval.Config cfg = new RetrievalEval.Config("persona", task, Scoring.WORD_MATCH, lengthList, depthList, trials, seed,
                    maxNewTokens, modelOptions.chunkLen, out, List.of(chatTemplate.replyEnd(userName.strip())));
            RetrievalEval.run(m.model, m.initial, m.tokenizer, cfg, m.label, System.out);
        }
        return 0;
    }
}
