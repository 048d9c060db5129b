# Checks examples/phoenix/*.ex without Phoenix (hex is not reachable here,
# so the modules cannot be compiled against it):
#
# - every file parses (Code.string_to_quoted!);
# - every function marked `@impl` is a callback of a behaviour its module
#   declares (`@behaviour` or a `use` that declares it), with that arity;
# - every required callback of those behaviours is defined, by the module or
#   by what its `use` injects;
# - in a module that uses `@impl`, every callback it defines carries it
#   (what Elixir itself warns about when compiling).
#
# The behaviours' callbacks are Phoenix v1.7.21's and websock 0.5's, copied
# from their sources (lib/phoenix/socket/transport.ex, lib/phoenix/socket.ex,
# lib/phoenix/channel.ex, lib/websock.ex); GenServer's come from the running
# Elixir. Phoenix 1.8 has the same callbacks.
#
# usage: elixir tests/phoenix_examples.exs DIR   (exits 1 on any finding)

defmodule PhoenixExamples do
  @transport %{
    required: [child_spec: 1, connect: 1, init: 1, handle_in: 2, handle_info: 2, terminate: 2],
    optional: [drainer_spec: 1, handle_control: 2]
  }

  # GenServer's callbacks, from the running Elixir.
  @gen_all GenServer.behaviour_info(:callbacks)
  @gen_opt GenServer.behaviour_info(:optional_callbacks)

  @behaviours %{
    "Phoenix.Socket.Transport" => @transport,
    "Phoenix.Socket" => %{required: [id: 1], optional: [connect: 2, connect: 3]},
    "Phoenix.Channel" => %{
      required: [join: 3],
      optional: [
        handle_in: 3,
        handle_out: 3,
        handle_info: 2,
        handle_call: 3,
        handle_cast: 2,
        code_change: 3,
        terminate: 2
      ]
    },
    "WebSock" => %{
      required: [init: 1, handle_in: 2, handle_info: 2],
      optional: [handle_control: 2, terminate: 2]
    },
    "GenServer" => %{required: @gen_all -- @gen_opt, optional: @gen_opt}
  }

  # What `use X` declares and which callbacks it defines itself.
  # `use Phoenix.Socket` implements the whole Transport behaviour on top of
  # Phoenix.Socket's; `use GenServer` defines every callback but init/1.
  @uses %{
    "Phoenix.Socket" =>
      {["Phoenix.Socket", "Phoenix.Socket.Transport"], @transport.required ++ @transport.optional},
    "Phoenix.Channel" => {["Phoenix.Channel"], []},
    "GenServer" => {["GenServer"], @gen_all -- [init: 1]}
  }

  defp behaviour(name), do: @behaviours[name]

  def check_dir(dir) do
    files = Path.wildcard(Path.join(dir, "*.ex")) |> Enum.sort()
    if files == [], do: [{dir, "no .ex files"}], else: Enum.flat_map(files, &check_file/1)
  end

  defp check_file(path) do
    src = File.read!(path)

    case Code.string_to_quoted(src, file: path, columns: true) do
      {:ok, ast} ->
        mods = modules(ast)
        if mods == [], do: [{path, "no defmodule"}], else: Enum.flat_map(mods, &check_module(path, &1))

      {:error, {meta, msg, token}} ->
        # Elixir's parser message: a string before the token, or {before, after}.
        text = if is_tuple(msg), do: elem(msg, 0) <> token <> elem(msg, 1), else: msg <> token
        [{path, "does not parse (line #{meta[:line]}): #{text}"}]
    end
  end

  # Top-level (and nested) defmodule forms: {name, body expressions}.
  defp modules(ast) do
    {_, acc} =
      Macro.prewalk(ast, [], fn
        {:defmodule, _, [name, [do: body]]} = node, acc -> {node, [{alias_name(name), exprs(body)} | acc]}
        node, acc -> {node, acc}
      end)

    Enum.reverse(acc)
  end

  defp exprs({:__block__, _, list}), do: list
  defp exprs(nil), do: []
  defp exprs(one), do: [one]

  defp alias_name({:__aliases__, _, parts}), do: Enum.map_join(parts, ".", &to_string/1)
  defp alias_name(atom) when is_atom(atom), do: inspect(atom)
  defp alias_name(other), do: Macro.to_string(other)

  defp check_module(path, {mod, body}) do
    where = "#{Path.basename(path)}: #{mod}"

    {behaviours, provided, findings} =
      Enum.reduce(body, {[], [], []}, fn
        {:@, _, [{:behaviour, _, [b]}]}, {bs, pr, fs} ->
          name = alias_name(b)
          if behaviour(name), do: {bs ++ [name], pr, fs}, else: {bs, pr, fs ++ ["@behaviour #{name} is not one this check knows"]}

        {:use, _, [u | opts]}, {bs, pr, fs} ->
          name = alias_name(u)

          case @uses[name] do
            {declared, defs} -> {bs ++ declared, pr ++ defs, fs}
            # `use MyAppWeb, :controller` and the like: the app's own, no behaviour.
            nil when opts != [] and is_atom(hd(opts)) -> {bs, pr, fs}
            nil -> {bs, pr, fs ++ ["use #{name} is not one this check knows"]}
          end

        _, acc ->
          acc
      end)

    {defs, impls, impl_findings} = definitions(body)
    callbacks = Enum.flat_map(behaviours, fn b -> behaviour(b).required ++ behaviour(b).optional end)

    wrong_impl =
      for fa <- impls, fa not in callbacks do
        "#{fmt(fa)} is marked @impl but is no callback of #{names(behaviours)}"
      end

    missing =
      for b <- behaviours, fa <- behaviour(b).required, fa not in defs, fa not in provided do
        "required callback #{fmt(fa)} of #{b} is not defined"
      end

    unmarked =
      if impls == [] do
        []
      else
        for fa <- Enum.uniq(defs), fa in callbacks, fa not in impls do
          "callback #{fmt(fa)} lacks @impl (Elixir warns when a module marks some callbacks and not others)"
        end
      end

    case findings ++ impl_findings ++ wrong_impl ++ missing ++ unmarked do
      [] ->
        impl = if impls == [], do: "", else: ": " <> Enum.map_join(impls, ", ", &fmt/1)
        IO.puts("ok   #{where} (#{names(behaviours)}#{impl})")
        []

      found ->
        Enum.map(found, &{where, &1})
    end
  end

  # The module's public functions in order ({name, arity}), those an @impl
  # precedes, and misplaced @impl attributes.
  defp definitions(body) do
    {defs, impls, fs, _pending} =
      Enum.reduce(body, {[], [], [], false}, fn
        {:@, _, [{:impl, _, [v]}]}, {ds, is, fs, _} when v != false ->
          {ds, is, fs, true}

        {:def, _, [head | _]}, {ds, is, fs, pending} ->
          fa = head_fa(head)
          {ds ++ [fa], if(pending, do: is ++ [fa], else: is), fs, false}

        {:defp, _, [head | _]}, {ds, is, fs, pending} ->
          fs = if pending, do: fs ++ ["@impl before private #{fmt(head_fa(head))}"], else: fs
          {ds, is, fs, false}

        _, acc ->
          acc
      end)

    {defs, Enum.uniq(impls), fs}
  end

  defp head_fa({:when, _, [head | _]}), do: head_fa(head)
  defp head_fa({name, _, args}) when is_atom(name), do: {name, length(args || [])}

  defp fmt({name, arity}), do: "#{name}/#{arity}"
  defp names([]), do: "no behaviour"
  defp names(bs), do: Enum.join(Enum.uniq(bs), ", ")
end

case System.argv() do
  [dir] ->
    case PhoenixExamples.check_dir(dir) do
      [] ->
        IO.puts("phoenix examples: all checked")

      findings ->
        for {where, what} <- findings, do: IO.puts(:stderr, "FAIL #{where}: #{what}")
        System.halt(1)
    end

  _ ->
    IO.puts(:stderr, "usage: elixir tests/phoenix_examples.exs DIR")
    System.halt(2)
end
