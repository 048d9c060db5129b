# Steering cameras, for all three shapes: pause, resume and set, with the
# pause remembered. A camera's pause is per connection: after a reconnect
# it streams again. So the server keeps what it wants (here, per node, in an
# ETS table) and every camera shape re-sends `pause` when a camera
# (re)connects or (re)joins while it is wanted paused.
#
# application.ex: add MyApp.CameraControl to the supervision tree (it owns
# the table). In a cluster, call pause/resume on every node (e.g. through
# :erpc.multicall/4), or keep the wish in your database instead of ETS.
defmodule MyApp.CameraControl do
  use GenServer

  @table __MODULE__

  def start_link(_opts), do: GenServer.start_link(__MODULE__, nil, name: __MODULE__)

  @impl true
  def init(nil) do
    :ets.new(@table, [:named_table, :public, read_concurrency: true])
    {:ok, nil}
  end

  @doc "Pauses camera `id` now and whenever it comes back."
  def pause(id) do
    :ets.insert(@table, {id, :paused})
    command(id, %{type: "pause"})
  end

  @doc "Resumes camera `id` and forgets the pause."
  def resume(id) do
    :ets.delete(@table, id)
    command(id, %{type: "resume"})
  end

  @doc "Sets fps and/or quality, e.g. `set(\"porch\", %{fps: 5, quality: 70})`."
  def set(id, fields), do: command(id, Map.put(fields, :type, "set"))

  @doc "Does the server want camera `id` paused?"
  def paused?(id), do: :ets.member(@table, id)

  # The bare socket and WebSock shapes subscribe to "camera_commands:<id>";
  # the Channel shape takes broadcasts on its own topic, "camera:<id>".
  defp command(id, %{type: type} = cmd) do
    Phoenix.PubSub.broadcast(MyApp.PubSub, "camera_commands:" <> id, {:camera_command, cmd})
    MyAppWeb.Endpoint.broadcast("camera:" <> id, type, Map.delete(cmd, :type))
  end
end
