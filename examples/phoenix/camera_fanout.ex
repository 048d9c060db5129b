# Camera frames to viewers on any node of an Erlang cluster, the shape
# zerocam's own relays take over NATS (README "Many cameras, many viewers"),
# with Phoenix.PubSub and :pg:
#
# * a viewer process (viewer_channel.ex, a LiveView) calls `watch/1`: it
#   joins the :pg group of the camera (cluster-wide membership) and
#   subscribes to "frames:<id>" on its own node;
# * the camera's socket (camera_socket.ex, camera_websock.ex,
#   camera_channel.ex) calls `publish/2` instead of Phoenix.PubSub.broadcast/3:
#   viewers on its node get the frame at once (local_broadcast), and each
#   OTHER node with viewers gets it once, through its Receiver; a node
#   without viewers gets no bytes of this camera;
# * latest frame, never a queue: one frame in flight per node; newer frames
#   replace the one waiting for that node (skipped frames are simply never
#   sent, as zerocam counts them);
# * `viewers/1` counts viewers on every node, so the camera socket can send
#   "pause" only when nobody anywhere watches.
#
# Supervision (application.ex), on every node:
#
#     children = [
#       {Phoenix.PubSub, name: MyApp.PubSub},
#       %{id: :pg_zerocam, start: {:pg, :start_link, [:zerocam_viewers]}},
#       {Registry, keys: :unique, name: MyApp.CameraRegistry},
#       MyApp.CameraFanout.Receiver,
#       {DynamicSupervisor, name: MyApp.CameraFanouts, strategy: :one_for_one},
#       ...
#     ]
#
# The camera socket starts one fanout per camera on its own node when the
# camera connects: DynamicSupervisor.start_child(MyApp.CameraFanouts,
# {MyApp.CameraFanout, id}) (`{:error, {:already_started, _}}` is fine).

defmodule MyApp.CameraFanout do
  use GenServer

  @pubsub MyApp.PubSub
  @scope :zerocam_viewers

  # -- viewers, on any node ----------------------------------------------

  @doc "Subscribes the caller to camera `id`'s frames, wherever it is connected."
  def watch(id) do
    :ok = :pg.join(@scope, id, self())
    Phoenix.PubSub.subscribe(@pubsub, "frames:" <> id)
  end

  @doc "Viewers of camera `id` on every node of the cluster."
  def viewers(id), do: length(:pg.get_members(@scope, id))

  # -- the camera's node ---------------------------------------------------

  def child_spec(id), do: %{id: {__MODULE__, id}, start: {__MODULE__, :start_link, [id]}}

  def start_link(id), do: GenServer.start_link(__MODULE__, id, name: via(id))

  @doc "Hands one JPEG of camera `id` to its viewers on every node."
  def publish(id, jpeg), do: GenServer.cast(via(id), {:frame, jpeg})

  defp via(id), do: {:via, Registry, {MyApp.CameraRegistry, id}}

  @impl true
  def init(id) do
    # A node that goes away must not stay "busy" forever.
    :ok = :net_kernel.monitor_nodes(true)
    {:ok, %{id: id, busy: MapSet.new(), waiting: %{}}}
  end

  @impl true
  def handle_cast({:frame, jpeg}, s) do
    Phoenix.PubSub.local_broadcast(@pubsub, "frames:" <> s.id, {:zerocam_frame, s.id, jpeg})

    nodes =
      for pid <- :pg.get_members(@scope, s.id), node(pid) != node(), uniq: true, do: node(pid)

    {:noreply, Enum.reduce(nodes, s, fn n, s -> offer(s, n, jpeg) end)}
  end

  @impl true
  def handle_info({:zerocam_taken, from}, s) do
    # That node took its frame: the newest one that waited goes next.
    case Map.pop(s.waiting, from) do
      {nil, _} -> {:noreply, %{s | busy: MapSet.delete(s.busy, from)}}
      {jpeg, waiting} -> {:noreply, send_to(%{s | waiting: waiting}, from, jpeg)}
    end
  end

  def handle_info({:nodedown, n}, s),
    do: {:noreply, %{s | busy: MapSet.delete(s.busy, n), waiting: Map.delete(s.waiting, n)}}

  def handle_info({:nodeup, _}, s), do: {:noreply, s}

  defp offer(s, n, jpeg) do
    if MapSet.member?(s.busy, n) do
      # One in flight per node: this frame replaces the one waiting.
      %{s | waiting: Map.put(s.waiting, n, jpeg)}
    else
      send_to(%{s | busy: MapSet.put(s.busy, n)}, n, jpeg)
    end
  end

  defp send_to(s, n, jpeg) do
    send({MyApp.CameraFanout.Receiver, n}, {:zerocam_frame, s.id, jpeg, self()})
    s
  end
end

defmodule MyApp.CameraFanout.Receiver do
  @moduledoc "One per node: frames from other nodes to this node's viewers."
  use GenServer

  def start_link(_), do: GenServer.start_link(__MODULE__, nil, name: __MODULE__)

  @impl true
  def init(nil), do: {:ok, nil}

  @impl true
  def handle_info({:zerocam_frame, id, jpeg, from}, s) do
    Phoenix.PubSub.local_broadcast(MyApp.PubSub, "frames:" <> id, {:zerocam_frame, id, jpeg})
    send(from, {:zerocam_taken, node()})
    {:noreply, s}
  end
end
