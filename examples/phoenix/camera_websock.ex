# (2) A WebSock handler (Phoenix ≥ 1.7 / Plug + Bandit or Cowboy) for zerocam's
# `raw` dialect, upgraded from a plain route with WebSockAdapter.upgrade/4.
#
# router.ex:
#   get "/ingest/:camera", MyAppWeb.CameraUpgradeController, :upgrade
# zerocam (protocol = "raw"): url = "wss://example.com/ingest/porch", token = "…"
defmodule MyAppWeb.CameraUpgradeController do
  use MyAppWeb, :controller

  def upgrade(conn, %{"camera" => camera}) do
    # The query string itself: `params` has ?token= only in an endpoint that
    # runs Plug.Parsers before the router (every camera got 403 otherwise).
    conn = Plug.Conn.fetch_query_params(conn)
    token = conn.query_params["token"] || ""

    if Plug.Crypto.secure_compare(token, Application.fetch_env!(:my_app, :camera_token)) do
      conn
      |> WebSockAdapter.upgrade(MyAppWeb.CameraWebSock, %{camera: camera}, timeout: 60_000)
      |> halt()
    else
      # 403, as the other shapes answer: the camera backs off to its maximum.
      conn |> send_resp(403, "bad token") |> halt()
    end
  end
end

defmodule MyAppWeb.CameraWebSock do
  @behaviour WebSock

  @impl true
  def init(state) do
    # Commands from MyApp.CameraControl (camera_control.ex).
    Phoenix.PubSub.subscribe(MyApp.PubSub, "camera_commands:" <> state.camera)

    # A pause is per connection: re-send the one the server still wants.
    if MyApp.CameraControl.paused?(state.camera),
      do: {:push, {:text, Jason.encode!(%{type: "pause"})}, state},
      else: {:ok, state}
  end

  @impl true
  def handle_in({jpeg, opcode: :binary}, state) do
    # "frames:<id>" and a shape no Channel expects (see camera_socket.ex).
    Phoenix.PubSub.broadcast(MyApp.PubSub, "frames:" <> state.camera, {:zerocam_frame, state.camera, jpeg})
    # One 0x0A per frame: the camera then keeps at most `window` frames in flight.
    {:push, {:binary, <<10>>}, state}
  end

  def handle_in({text, opcode: :text}, state) do
    # hello, heartbeat, stats, settings: JSON with a "type" field.
    case Jason.decode(text) do
      {:ok, %{"type" => "stats"} = stats} ->
        Phoenix.PubSub.broadcast(MyApp.PubSub, "frames:" <> state.camera, {:zerocam_stats, state.camera, stats})

      _ ->
        :ok
    end

    {:ok, state}
  end

  @impl true
  def handle_info({:camera_command, cmd}, state), do: {:push, {:text, Jason.encode!(cmd)}, state}
  def handle_info(_msg, state), do: {:ok, state}

  @impl true
  def terminate(_reason, _state), do: :ok
end
