package ai.longrwkv.cli;

import ai.longrwkv.datasets.build.ChatTemplate;
import ai.longrwkv.eval.ChatSession;
import ai.longrwkv.eval.Sampler;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.Callable;

/** `longrwkv chat`: talk to a model in the RWKV World chat format. */
@Command(name = "chat", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Interactive chat in the RWKV World format ('User: ...' / 'Assistant: ...' turns separated by blank lines),",
                "the format World models and roleplay finetunes are trained on, or in another --template (the one the data",
                "was built with: metharme, a template file). One line per message on stdin; the reply",
                "streams as it is generated. The state carries the whole conversation, so each turn costs only its own",
                "tokens. Commands: /reset (forget the conversation), /quit (or end of input)."})
final class ChatCommand implements Callable<Integer> {
    @Mixin EvalModelOptions modelOptions;

    @Option(names = "--template", defaultValue = "world", paramLabel = "world|metharme|FILE",
            description = "The chat template, as in data build --template (default: ${DEFAULT-VALUE}).") String template;
    @Option(names = "--system", paramLabel = "TEXT", description = "Fed first as the system turn ('System: TEXT' in world; a character card, instructions).") String system;
    @Option(names = "--name", defaultValue = "Assistant", paramLabel = "BOT", description = "The bot's name in the turns (default: ${DEFAULT-VALUE}).") String botName;
    @Option(names = {"--user", "--user-name"}, defaultValue = "User", paramLabel = "NAME", description = "Your name in the turns, as data build --user-name (default: ${DEFAULT-VALUE}).") String userName;
    @Option(names = "--temperature", defaultValue = "1.0", description = "Sampling temperature; 0 = greedy (default: ${DEFAULT-VALUE}).") double temperature;
    @Option(names = "--top-p", defaultValue = "0.3", description = "Nucleus sampling mass (default: ${DEFAULT-VALUE}, ChatRWKV's chat setting).") double topP;
    @Option(names = {"--max-new-tokens", "--max-tokens"}, defaultValue = "500", description = "Tokens per reply at most; --max-tokens is "
            + "the older spelling (default: ${DEFAULT-VALUE}).") int maxTokens;
    @Option(names = "--seed", defaultValue = "1", description = "Sampling seed (default: ${DEFAULT-VALUE}).") long seed;

    @Override
    public Integer call() throws IOException {
        if (botName.isBlank() || userName.isBlank()) throw new IllegalArgumentException("--name and --user must not be empty");
        ChatTemplate chatTemplate = ChatTemplate.parse(template);
        Sampler sampler = new Sampler(temperature, topP, seed);
        PrintStream out = new PrintStream(System.out, true, StandardCharsets.UTF_8);
        boolean interactive = System.console() != null;
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        try (EvalModelOptions.Loaded m = modelOptions.load();
             ChatSession chat = new ChatSession(m.model, m.tokenizer, m.initial, chatTemplate, userName, botName, system, sampler, maxTokens,
                     modelOptions.chunkLen)) {
            if (interactive) out.println("chatting with " + m.label + "; /reset forgets the conversation, /quit ends it\n");
            while (true) {
                out.print(userName + ": ");
                out.flush();
                String line = in.readLine();
                if (line == null || line.strip().equals("/quit") || line.strip().equals("/exit")) {
                    if (line == null) out.println();
                    break;
                }
                if (!interactive) out.println(line);   // piped input: keep the transcript readable
                if (line.strip().equals("/reset")) {
                    chat.reset();
                    out.println("(conversation forgotten)\n");
                    continue;
                }
                if (line.isBlank()) continue;
                out.print("\n" + botName + ":" + (chatTemplate.replyLead(botName).isEmpty() ? " " : ""));   // metharme's replies start without a space
                out.flush();
                chat.turn(line, piece -> {
                    out.print(piece);
                    out.flush();
                });
                out.print("\n\n");
                out.flush();
            }
        }
        return 0;
    }
}
